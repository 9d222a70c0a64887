"""Generic actions for composing runbooks and for tests: echo, set, fail, sleep."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ActionInput, action


@action(
    "util.echo",
    params={"type": "object", "properties": {"message": {}, "data": {"type": "object"}},
            "additionalProperties": False},
    description="Return the message (and data) unchanged.",
)
async def echo(inp: ActionInput) -> dict[str, Any]:
    return {"message": inp.params.get("message"), "data": inp.params.get("data")}


@action(
    "util.set",
    params={"type": "object", "properties": {"values": {"type": "object"}}, "required": ["values"],
            "additionalProperties": False},
    description="Return `values` as the step output (computed values for later steps).",
)
async def set_values(inp: ActionInput) -> dict[str, Any]:
    return dict(inp.params["values"])


@action(
    "util.fail",
    params={
        "type": "object",
        "properties": {
            "times": {"type": "integer", "description": "fail this many attempts, then succeed; -1 fails always"},
            "error_type": {"type": "string"},
            "message": {"type": "string"},
            "non_retryable": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    description="Fail the first `times` attempts (always when -1), then succeed: exercises retries.",
)
async def fail(inp: ActionInput) -> dict[str, Any]:
    attempt = activity.info().attempt
    times = int(inp.params.get("times", -1))
    if times < 0 or attempt <= times:
        raise ApplicationError(
            inp.params.get("message") or f"failing on purpose (attempt {attempt})",
            type=inp.params.get("error_type", "ActionFailed"),
            non_retryable=bool(inp.params.get("non_retryable", False)),
        )
    return {"attempts": attempt}


@action(
    "util.sleep",
    params={"type": "object", "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 3600}},
            "required": ["seconds"], "additionalProperties": False},
    description="Sleep inside an activity, heartbeating, so cancellation and heartbeat timeouts apply.",
)
async def sleep(inp: ActionInput) -> dict[str, Any]:
    remaining = float(inp.params["seconds"])
    while remaining > 0:
        chunk = min(remaining, 1.0)
        await asyncio.sleep(chunk)
        remaining -= chunk
        activity.heartbeat({"remaining_s": remaining})
    return {"slept": inp.params["seconds"]}
