"""People's commands from the CLI through the receiver, as the person whose token is set.

Where workers require verified people (incidentctl/identity_policy.py), a command sent straight to Temporal
carries no proof and is refused; with `INCIDENTCTL_TOKEN` (a personal token, `incidentctl people token NAME`)
and `INCIDENTCTL_RECEIVER_URL` set, the CLI sends it to the receiver's people endpoints instead, which check
the token and sign the command for the incident (incidentctl/intake/people_api.py).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import aiohttp

from workflows.model import ApprovalDecision

TIMEOUT_S = 30.0
ENDPOINTS = {"Note": "notes", "SeverityChange": "severity", "Resolution": "resolve", "Reopening": "reopen",
             "Closure": "close", "ReviewEdit": "review", "Acknowledgement": "acknowledge", "Assignment": "assign"}


class RelayError(Exception):
    pass


def configured() -> tuple[str, str] | None:
    """(receiver URL, token) when both are set."""
    url, token = os.environ.get("INCIDENTCTL_RECEIVER_URL", "").strip(), os.environ.get("INCIDENTCTL_TOKEN", "")
    return (url.rstrip("/"), token.strip()) if url and token.strip() else None


def request_body(command: Any) -> tuple[str, dict[str, Any]]:
    """The people endpoint and JSON body for a command dataclass (who acts is the token's owner: `by` and
    `approver` are sent so the receiver refuses a mismatch rather than act as someone else)."""
    fields = {k: v for k, v in dataclasses.asdict(command).items() if k != "proof"}
    if isinstance(command, ApprovalDecision):
        fields["decision"] = "approve" if fields.pop("approve") else "reject"
        return "approvals", {k: v for k, v in fields.items() if v != ""}
    return ENDPOINTS[type(command).__name__], {k: v for k, v in fields.items() if v != "" or k == "by"}


async def relay_command(incident: str, command: Any) -> dict[str, Any] | None:
    """The receipt of `command` sent through the receiver, or None when no token is configured."""
    if configured() is None:
        return None
    return await relay(incident, *request_body(command))


async def relay(incident: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /incidents/{incident}/{endpoint} to the configured receiver; its receipt, or RelayError with why."""
    return await _post(f"/incidents/{incident}/{endpoint}", body)


async def relay_start(body: dict[str, Any]) -> dict[str, Any]:
    """POST /incidents: open an incident with a runbook the receiver loaded, as the token's owner."""
    return await _post("/incidents", body)


async def _post(path: str, body: dict[str, Any]) -> dict[str, Any]:
    where = configured()
    if where is None:
        raise RelayError("set INCIDENTCTL_RECEIVER_URL and INCIDENTCTL_TOKEN (your personal token)")
    url, token = where
    target = url + path
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session, \
                session.post(target, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = {"error": (await response.text())[:300]}
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RelayError(f"cannot reach the receiver at {url} (INCIDENTCTL_RECEIVER_URL): {exc}") from None
    if response.status != 200 or not isinstance(answer, dict):
        reason = answer.get("error") if isinstance(answer, dict) else answer
        raise RelayError(f"the receiver refused ({response.status}): {reason}")
    return answer["receipt"]
