"""`prometheus.wait`: poll a PromQL query until its condition holds continuously for `for`, within `timeout`.

The deadline is absolute across retries (the first attempt's start travels in heartbeat details, as the k8s
waits do); the time held does not survive a retry, since nobody watched in between. A query Prometheus refuses
(HTTP 400/422) fails at once, for good. A Prometheus that never answered this attempt fails it (retried by the
step's policy); one that stops answering mid-wait resets the time held and the wait goes on, since a scrape
server restart should not fail a remediation. On the deadline: `VerificationFailed` with what was last seen.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.heartbeats import heartbeat, previous_details
from activities.prometheus.api import CONNECTION, DURATION, QUERY, duration_param, endpoint, get
from activities.prometheus.conditions import CONDITION_PATTERN, parse_condition
from activities.prometheus.results import UnexpectedAnswer, instant
from incidentctl.dsl.durations import format_duration

MAX_WAIT_S = 3600.0
MIN_INTERVAL_S = 0.2
SAMPLES_REPORTED = 10


def _started() -> float:
    details = previous_details()
    if details and isinstance(details[0], dict) and "started" in details[0]:
        return float(details[0]["started"])
    return time.time()


@action(
    "prometheus.wait",
    params={
        "type": "object",
        "properties": {
            "query": QUERY,
            "condition": {"type": "string", "pattern": CONDITION_PATTERN, "default": "any",
                          "description": "any (at least one sample), none (no sample), or every sample compared "
                                         "with a number: '<= 0.01', '== 0', '> 2'"},
            "for": {**DURATION, "default": "0s", "description": "how long the condition must hold without a break"},
            # As the k8s waits: the step's default timeout (5m per attempt) covers it; a longer wait needs the
            # step's `timeout` raised too.
            "timeout": {**DURATION, "default": "5m", "description": f"give up after this long (at most "
                                                                    f"{format_duration(MAX_WAIT_S)}; raise the "
                                                                    "step's timeout above it)"},
            "interval": {**DURATION, "default": "15s", "description": "time between two queries"},
            **CONNECTION,
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    description="Wait until a PromQL query holds (any / none / a comparison) for a duration, within a timeout.",
)
async def wait(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    target = endpoint(p)
    condition = parse_condition(p["condition"])
    timeout = min(duration_param(p, "timeout"), MAX_WAIT_S)
    hold = duration_param(p, "for")
    interval = max(duration_param(p, "interval"), MIN_INTERVAL_S)
    if hold >= timeout:
        raise ActionError(f"for ({format_duration(hold)}) must be shorter than timeout ({format_duration(timeout)})",
                          type="InvalidParams", non_retryable=True)
    started = _started()
    held_since: float | None = None
    answered = False
    seen: dict[str, Any] = {"polls": 0}
    while True:
        try:
            data = await get(target, "query", {"query": p["query"]}, p["api_timeout"])
            observed = instant(data, SAMPLES_REPORTED)
            answered, error = True, None
        except UnexpectedAnswer as exc:
            raise ActionError(f"{p['query']}: {exc}", type="PromQLError", non_retryable=True) from None
        except ActionError as exc:
            if exc.non_retryable or not answered:
                raise
            observed, error = None, exc.message
        now = time.time()
        holds = observed is not None and condition.holds(observed.values)
        held_since = (held_since or now) if holds else None
        seen = {"holds": holds, "held_for_s": round(now - held_since, 1) if held_since else 0.0,
                "value": observed.reported["value"] if observed else None,
                "count": observed.reported["count"] if observed else None,
                "samples": observed.reported["samples"] if observed else [],
                "last_error": error, "polls": seen["polls"] + 1}
        if held_since is not None and now - held_since >= hold:
            return {"ok": True, "waited_s": round(now - started, 1), "condition": condition.describe(),
                    "query": p["query"], "prometheus": target.shown, **seen}
        if now - started >= timeout:
            last = (f"last value {seen['value']!r} of {seen['count']} samples" if observed
                    else f"Prometheus last failed: {error}")
            raise ActionError(f"{p['query']!r} did not hold ({condition.describe()}) for {format_duration(hold)} "
                              f"within {format_duration(timeout)}: {last}", seen,
                              type="VerificationFailed", non_retryable=True)
        heartbeat({"started": started, "seen": {k: v for k, v in seen.items() if k != "samples"}})
        await asyncio.sleep(min(interval, max(started + timeout - now, MIN_INTERVAL_S)))
