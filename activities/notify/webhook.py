"""`notify.webhook`: POST a JSON message, with its idempotency key, to a webhook URL."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.notify.delivery import TARGET, idempotency_key, post_json, target_url


@action("notify.webhook",
        params={"type": "object", "properties": {**TARGET, "event": {**TARGET["event"], "default": "message"}},
                "required": ["message"], "additionalProperties": False},
        description="POST a JSON message (with an Idempotency-Key) to a webhook URL.")
async def webhook(inp: ActionInput) -> dict[str, Any]:
    key = idempotency_key(inp)
    body = {"incident_id": inp.incident_id, "event": inp.params["event"], "message": inp.params["message"],
            "idempotency_key": key}
    if inp.params.get("approval_step"):
        body["approval_step"] = inp.params["approval_step"]
    status = await post_json(target_url(inp.params), body, key)
    return {"delivered": True, "channel": "webhook", "status": status, "key": key}
