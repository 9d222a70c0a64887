"""`prometheus.query`: one PromQL query, instant (now) or over a range ending now; the samples as data."""

from __future__ import annotations

import time
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.prometheus.api import CONNECTION, DURATION, QUERY, duration_param, endpoint, get
from activities.prometheus.results import UnexpectedAnswer, instant, range_result
from incidentctl.dsl.durations import format_duration

# A range query asks for at most this many points per series (Prometheus' own bound is 11,000).
MAX_RANGE_POINTS = 1000
DEFAULT_RANGE_POINTS = 60


def _range_query(params: dict[str, Any]) -> dict[str, str]:
    window = duration_param(params, "range")
    step = duration_param(params, "step") if params.get("step") is not None else window / DEFAULT_RANGE_POINTS
    step = max(step, 1.0)
    if window <= 0 or window / step > MAX_RANGE_POINTS:
        raise ActionError(f"range {format_duration(window)} with step {step:g}s asks for more than "
                          f"{MAX_RANGE_POINTS} points per series: give a larger step",
                          type="InvalidParams", non_retryable=True)
    end = time.time()
    return {"query": params["query"], "start": f"{end - window:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}


@action(
    "prometheus.query",
    params={
        "type": "object",
        "properties": {
            "query": QUERY,
            "range": {**DURATION, "description": "look back this long from now (a range query); absent: instant"},
            "step": {**DURATION, "description": f"range queries: resolution (default range/{DEFAULT_RANGE_POINTS})"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50,
                      "description": "report at most this many samples (instant) or series (range)"},
            **CONNECTION,
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    description="Run a PromQL query (instant, or a range ending now); returns the samples and the first value.",
)
async def query(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    target = endpoint(p)
    ranged = p.get("range") is not None
    form = _range_query(p) if ranged else {"query": p["query"]}
    data = await get(target, "query_range" if ranged else "query", form, p["api_timeout"])
    try:
        result = range_result(data, p["limit"]) if ranged else instant(data, p["limit"]).reported
    except UnexpectedAnswer as exc:
        raise ActionError(f"{p['query']}: {exc}", type="PromQLError", non_retryable=True) from None
    return {**result, "query": p["query"], "prometheus": target.shown}
