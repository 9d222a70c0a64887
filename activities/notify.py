"""Notification actions. `notify.log` writes a structured line (and a JSON line to a file when asked)."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from activities.base import ActionInput, action

logger = logging.getLogger("incidentctl.notify")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@action(
    "notify.log",
    params={
        "type": "object",
        "properties": {
            "message": {"type": "string", "minLength": 1},
            "channel": {"type": "string"},
            "level": {"enum": ["info", "warning", "error"]},
        },
        "required": ["message"],
        "additionalProperties": False,
    },
    description="Log a stakeholder message (and append it to $INCIDENTCTL_NOTIFY_LOG as JSON when set).",
)
async def log_message(inp: ActionInput) -> dict[str, Any]:
    level = inp.params.get("level", "info")
    record = {
        "at": datetime.now(UTC).isoformat(),
        "incident_id": inp.incident_id,
        "step_id": inp.step_id,
        "channel": inp.params.get("channel", "log"),
        "level": level,
        "message": inp.params["message"],
    }
    logger.log(_LEVELS[level], "[%s] %s: %s", record["incident_id"], record["step_id"], record["message"])
    path = os.environ.get("INCIDENTCTL_NOTIFY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as sink:
            sink.write(json.dumps(record, sort_keys=True) + "\n")
    return {"delivered": True, "channel": record["channel"], "message": record["message"]}
