"""Generic actions for composing runbooks and for tests: echo, set, fail, sleep."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.heartbeats import heartbeat

# Heartbeat this often while sleeping: cancellation reaches an activity only through a heartbeat, and a step
# with a heartbeat timeout must see one well within it. The SDK throttles the actual RPCs, so this is cheap.
SLEEP_SLICE_S = 0.5


@action(
    "util.echo",
    params={
        "type": "object",
        "properties": {
            "message": {"description": "any JSON value, returned unchanged"},
            "data": {"type": "object", "description": "optional object, returned unchanged"},
        },
        "additionalProperties": False,
    },
    description="Return the message (and data) unchanged.",
)
async def echo(inp: ActionInput) -> dict[str, Any]:
    return {"message": inp.params.get("message"), "data": inp.params.get("data")}


@action(
    "util.set",
    params={
        "type": "object",
        "properties": {"values": {"type": "object", "description": "returned as the step output"}},
        "required": ["values"],
        "additionalProperties": False,
    },
    description="Return `values` as the step output (computed values for later steps).",
)
async def set_values(inp: ActionInput) -> dict[str, Any]:
    return dict(inp.params["values"])


@action(
    "util.fail",
    params={
        "type": "object",
        "properties": {
            # Any negative number means "always": -1 is the documented spelling and the default.
            "times": {"type": "integer", "default": -1,
                      "description": "fail this many attempts, then succeed; -1 fails always"},
            "error_type": {"type": "string", "minLength": 1, "default": "ActionFailed",
                           "description": "ApplicationError type, matched by retry.non_retryable_errors"},
            "message": {"type": "string"},
            "non_retryable": {"type": "boolean", "default": False},
        },
        "additionalProperties": False,
    },
    description="Fail the first `times` attempts (always when -1), then succeed: exercises retries.",
)
async def fail(inp: ActionInput) -> dict[str, Any]:
    from temporalio import activity  # here, not at module import: building the action catalog must not load it

    # Temporal counts attempts from 1, so `times: 2` fails attempts 1 and 2 and succeeds on the third.
    attempt = activity.info().attempt
    times = inp.params["times"]
    if times < 0 or attempt <= times:
        raise ActionError(
            inp.params.get("message") or f"failing on purpose (attempt {attempt})",
            type=inp.params["error_type"],
            non_retryable=inp.params["non_retryable"],
        )
    return {"attempts": attempt}


@action(
    "util.sleep",
    params={
        "type": "object",
        "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 3600}},
        "required": ["seconds"],
        "additionalProperties": False,
    },
    description="Sleep inside an activity, heartbeating, so cancellation and heartbeat timeouts apply.",
)
async def sleep(inp: ActionInput) -> dict[str, Any]:
    seconds = inp.params["seconds"]
    # Against a deadline rather than summing slices, so event-loop lag does not stretch the sleep.
    deadline = time.monotonic() + float(seconds)
    heartbeat({"remaining_s": float(seconds)})
    while (remaining := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(remaining, SLEEP_SLICE_S))
        heartbeat({"remaining_s": max(0.0, deadline - time.monotonic())})
    return {"slept": seconds}
