"""`notify.log`: a stakeholder message as a structured log line (and a JSON line to a file when asked)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from activities.base import ActionInput, action
from activities.notify.delivery import TARGET

logger = logging.getLogger("incidentctl.notify")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
NOTIFY_LOG_ENV = "INCIDENTCTL_NOTIFY_LOG"


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write() of one line in append mode: concurrent activities in the worker do not interleave lines.
    with path.open("a", encoding="utf-8") as sink:
        sink.write(line + "\n")


@action(
    "notify.log",
    params={
        "type": "object",
        "properties": {
            "message": {"type": "string", "minLength": 1},
            "channel": {"type": "string", "minLength": 1, "default": "log"},
            "level": {"enum": ["info", "warning", "error"], "default": "info"},
            "event": {"type": "string", "description": "set by incident communication (opened, update, ...)"},
            "key": {"type": "string", "description": "idempotency key set by incident communication"},
            "approval_step": TARGET["approval_step"],
        },
        "required": ["message"],
        "additionalProperties": False,
    },
    description="Log a stakeholder message (and append it to $INCIDENTCTL_NOTIFY_LOG as JSON when set).",
)
async def log_message(inp: ActionInput) -> dict[str, Any]:
    from temporalio import activity  # here, not at module import: building the action catalog must not load it

    level, channel = inp.params["level"], inp.params["channel"]
    # incident_id + step_id (+ attempt) identify one step execution, so a reader of the sink can drop the
    # duplicate a retried activity would produce.
    record = {
        "at": datetime.now(UTC).isoformat(),
        "incident_id": inp.incident_id,
        "step_id": inp.step_id,
        "attempt": activity.info().attempt,
        "channel": channel,
        "level": level,
        "message": inp.params["message"],
    }
    # `extra` carries the fields for structured handlers; the text stays readable for plain ones (the demo).
    logger.log(_LEVELS[level], "[%s] %s/%s: %s", channel, inp.incident_id or "-", inp.step_id or "-",
               record["message"], extra={"notify": record})
    path = os.environ.get(NOTIFY_LOG_ENV)
    if path:
        # File I/O off the event loop: the worker runs other activities on the same loop.
        await asyncio.to_thread(_append_line, Path(path), json.dumps(record, sort_keys=True))
    return {"delivered": True, "channel": channel, "message": record["message"]}
