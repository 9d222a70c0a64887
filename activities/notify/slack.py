"""`notify.slack`: post a message to a Slack incoming webhook (at-least-once: Slack cannot deduplicate).

An approval request also carries Approve and Reject buttons (Block Kit). A click reaches the receiver's
`POST /slack/interactions` (incidentctl/intake/slack_api.py), which checks Slack's signature, finds the person
by their Slack user id and decides as them; the button's value only says which incident and step it is for.
The text stays whole for clients and channels without blocks.
"""

from __future__ import annotations

import json
from typing import Any

from activities.base import ActionInput, action
from activities.notify.delivery import TARGET, idempotency_key, post_json, target_url

# action_id -> approve?: the receiver takes clicks on these buttons only.
DECISION_BUTTONS = {"incidentctl_approve": True, "incidentctl_reject": False}


def button_value(incident_id: str, step: str) -> str:
    return json.dumps({"incident": incident_id, "step": step}, sort_keys=True, separators=(",", ":"))


def approval_buttons(incident_id: str, step: str) -> dict[str, Any]:
    value = button_value(incident_id, step)
    labels = {"incidentctl_approve": ("Approve", "primary"), "incidentctl_reject": ("Reject", "danger")}
    return {"type": "actions", "block_id": "incidentctl_decision",
            "elements": [{"type": "button", "action_id": action_id, "value": value, "style": style,
                          "text": {"type": "plain_text", "text": label}}
                         for action_id, (label, style) in labels.items()]}


@action("notify.slack", params={"type": "object", "properties": TARGET, "required": ["message"],
                                "additionalProperties": False},
        description="Post a message to a Slack incoming webhook.")
async def slack(inp: ActionInput) -> dict[str, Any]:
    key = idempotency_key(inp)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": inp.params["message"]}}]
    if inp.params.get("approval_step"):
        blocks.append(approval_buttons(inp.incident_id, inp.params["approval_step"]))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"incidentctl · {key}"}]})
    status = await post_json(target_url(inp.params), {"text": inp.params["message"], "blocks": blocks}, key)
    return {"delivered": True, "channel": "slack", "status": status, "key": key}
