"""`POST /slack/interactions`: a click on an `[APPROVAL NEEDED]` message's Approve or Reject button.

Slack posts the click form-encoded (`payload=<json>`), signed with the app's signing secret
(`INCIDENTCTL_SLACK_SIGNING_SECRET`, incidentctl/intake/slack_signature.py). Who acts is the person of the
people file whose `slack:` is the clicking user's id (and, with `INCIDENTCTL_SLACK_TEAM_ID`, only users of that
workspace): never a name from the payload. The decision is built as that person and signed for the incident
like every person's command (people_api.signed), so a worker that requires verified people takes it.

Slack hears 200 with a short text for every click it signed (approved, refused and why, not in the people
file), 401 for a bad signature, 400 for a body that is not a Slack interaction.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from activities.notify.slack import DECISION_BUTTONS
from incidentctl import client as incidents
from incidentctl.intake import slack_signature
from incidentctl.intake.auth import SeenSignatures
from incidentctl.intake.http import INTAKE, LIMITS, Refused, read_body
from incidentctl.intake.http import refuse as _refuse
from incidentctl.intake.people_api import signed
from incidentctl.people import PeopleConfigError, load_slack_users
from workflows.model import ApprovalDecision

SECRET_ENV = "INCIDENTCTL_SLACK_SIGNING_SECRET"
TEAM_ENV = "INCIDENTCTL_SLACK_TEAM_ID"
NOT_A_PERSON = "you are not in incidentctl's people file"


@dataclass(frozen=True)
class Click:
    user: str
    team: str
    incident: str
    step: str
    approve: bool


class Ignored(Exception):
    """A signed interaction that is not a click on our buttons: Slack hears why, with a 200."""


def parse_click(body: bytes) -> Click:
    """The button click in Slack's form body; Refused (400) for a body that is no interaction at all."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError):
        raise Refused(400, "the body must be form-encoded with a `payload` field holding JSON, as Slack sends",
                      "malformed_slack_payload") from None
    if not isinstance(payload, dict):
        raise Refused(400, "the Slack payload must be a JSON object", "malformed_slack_payload")
    actions = payload.get("actions")
    if payload.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        raise Ignored("incidentctl answers only its Approve and Reject buttons")
    action = actions[0] if isinstance(actions[0], dict) else {}
    if action.get("action_id") not in DECISION_BUTTONS:
        raise Ignored(f"incidentctl has no button {action.get('action_id')!r}")
    try:
        target = json.loads(action.get("value") or "")
        incident, step = target["incident"], target["step"]
    except (ValueError, TypeError, KeyError):
        raise Ignored("the button does not name an incident and an approval step") from None
    user, team = payload.get("user"), payload.get("team")
    user_id = user.get("id") if isinstance(user, dict) else None
    team_id = (team.get("id") if isinstance(team, dict) else None) or (
        user.get("team_id") if isinstance(user, dict) else None)
    if not all(isinstance(v, str) and v for v in (incident, step, user_id)):
        raise Ignored("the click does not say who clicked, or for which incident and step")
    return Click(user=user_id, team=team_id if isinstance(team_id, str) else "", incident=incident, step=step,
                 approve=DECISION_BUTTONS[action["action_id"]])


def person_of(click: Click, slack_users: dict[str, str], team: str) -> str | None:
    """The person behind the click: their Slack user id is in the people file (of the configured workspace)."""
    if team and click.team != team:
        return None
    return slack_users.get(click.user)


def outcome_text(who: str, receipt: Any) -> str:
    said = "approved" if receipt.approve else "rejected"
    text = f"{said} as {who}, {receipt.approvals}/{receipt.required}"
    return text if receipt.outcome == "pending" else f"{text}: {receipt.step} is {receipt.outcome}"


async def _decide(request: web.Request, click: Click) -> str:
    try:
        who = person_of(click, load_slack_users(), os.environ.get(TEAM_ENV, ""))
    except PeopleConfigError as exc:
        return f"cannot check who you are: {exc}"
    if who is None:
        return f"{NOT_A_PERSON} (Slack user {click.user}): nothing was decided"
    decision = ApprovalDecision(approver=who, approve=click.approve, step=click.step, comment="via Slack")
    try:
        receipt = await incidents.decide(request.app[INTAKE].client, click.incident,
                                         signed(request.app[INTAKE], click.incident, decision))
    except incidents.IncidentError as exc:
        return f"refused: {exc}"
    return outcome_text(who, receipt)


def interactions_handler() -> Callable[[web.Request], Awaitable[web.Response]]:
    """The endpoint, with its own memory of the signatures it has seen."""
    seen = SeenSignatures()

    async def handle(request: web.Request) -> web.Response:
        intake = request.app[INTAKE]
        try:
            secret = os.environ.get(SECRET_ENV, "")
            if not secret:
                raise Refused(404, f"Slack buttons are not configured on this receiver: set {SECRET_ENV}",
                              "slack_not_configured")
            raw = await read_body(request, request.app[LIMITS])
            problem = slack_signature.problem(secret, request.headers.get(slack_signature.TIMESTAMP_HEADER, ""),
                                              request.headers.get(slack_signature.SIGNATURE_HEADER, ""), raw,
                                              time.time(), seen)
            if problem:
                raise Refused(401, problem, "unauthorized")
            try:
                answer = await _decide(request, parse_click(raw))
            except Ignored as exc:
                answer = str(exc)
        except Refused as refused:
            return _refuse(intake, refused.status, refused.reason, refused.code)
        intake.metrics.inc("incidentctl_slack_interactions_total")
        # The answer acknowledges the click; its text says what happened, for whoever reads it (docs/communication.md).
        return web.json_response({"response_type": "ephemeral", "replace_original": False, "text": answer})

    return handle
