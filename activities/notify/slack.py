"""`notify.slack`: post a message to a Slack incoming webhook (at-least-once: Slack cannot deduplicate)."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.notify.delivery import TARGET, idempotency_key, post_json, target_url


@action("notify.slack", params={"type": "object", "properties": TARGET, "required": ["message"],
                                "additionalProperties": False},
        description="Post a message to a Slack incoming webhook.")
async def slack(inp: ActionInput) -> dict[str, Any]:
    key = idempotency_key(inp)
    body = {"text": inp.params["message"],
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": inp.params["message"]}},
                       {"type": "context", "elements": [{"type": "mrkdwn", "text": f"incidentctl · {key}"}]}]}
    status = await post_json(target_url(inp.params), body, key)
    return {"delivered": True, "channel": "slack", "status": status, "key": key}
