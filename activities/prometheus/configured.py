"""`prometheus.configured`: whether a step would have a Prometheus to ask (its `url`, or the worker's).

The workflow cannot read the worker's environment, so a runbook whose metric verification is optional asks
this first and puts `when: steps.<id>.output.configured` on the verification (docs/prometheus.md).
"""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.prometheus.api import CONNECTION, configured_url
from activities.secrets import shown_url


@action(
    "prometheus.configured",
    params={"type": "object", "properties": {"url": CONNECTION["url"]}, "additionalProperties": False},
    description="Whether a Prometheus is configured (the step's url or the worker's INCIDENTCTL_PROMETHEUS_URL).",
)
async def configured(inp: ActionInput) -> dict[str, Any]:
    found = configured_url(inp.params)
    if found is None:
        return {"configured": False, "url": None, "source": None}
    url, source = found
    return {"configured": True, "url": shown_url(url, keep_path=True), "source": source}
