"""Slack Approve/Reject buttons, verified: the `[APPROVAL NEEDED]` message carries them, and a click signed by
Slack decides as the person whose Slack user id the people file names.

Unit tests for the signature check, the click and the mapping; the rest through the real wire: dev server, a
worker that requires verified people, the receiver with a signing key, and a local HTTP server standing in for
Slack's incoming webhook (it captures what the Slack action posts, buttons included)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.identity import new_signing_key, signing_key_line
from incidentctl.intake.auth import SeenSignatures
from incidentctl.intake.http import Refused
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from incidentctl.intake.slack_api import Click, Ignored, parse_click, person_of
from incidentctl.intake.slack_signature import problem, signed_headers
from incidentctl.library import compile_text
from incidentctl.localhttp import serve
from incidentctl.people import PeopleConfigError, load_slack_users, load_token_owners, new_token
from tests.conftest import eventually
from tests.verified_people import start_proven, strict_worker

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
KEY = new_signing_key("k1")
BUTTON = json.dumps({"incident": "inc-1", "step": "gate"})


def interaction(user: str, action_id: str, value: str, team: str = "T0ACME") -> bytes:
    """A block_actions body as Slack posts it: form-encoded, the interaction as JSON in `payload`."""
    payload = {"type": "block_actions", "team": {"id": team, "domain": "acme"},
               "user": {"id": user, "username": user.lower(), "team_id": team},
               "actions": [{"type": "button", "action_id": action_id, "block_id": "incidentctl_decision",
                            "value": value, "action_ts": str(time.time())}],
               "response_url": "https://hooks.slack.invalid/actions/T0ACME/1/x"}
    return urlencode({"payload": json.dumps(payload)}).encode()


# ------------------------------------------------------------------ units


def test_a_slack_signature_holds_once_for_its_body_secret_and_time() -> None:
    body = interaction("U0BOB", "incidentctl_approve", BUTTON)
    headers = signed_headers(SECRET, body, timestamp=1_000_000)
    stamp, given = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert given.startswith("v0=")
    seen = SeenSignatures()
    assert problem(SECRET, stamp, given, body, 1_000_010, seen) is None
    assert "already received" in problem(SECRET, stamp, given, body, 1_000_011, seen)
    assert "wrong X-Slack-Signature" in problem(SECRET, stamp, given, body + b"x", 1_000_010, SeenSignatures())
    assert "wrong X-Slack-Signature" in problem("another-secret", stamp, given, body, 1_000_010, SeenSignatures())
    assert "wrong X-Slack-Signature" in problem(SECRET, "1000001", given, body, 1_000_010, SeenSignatures())
    for late_or_early in (1_000_000 + 301, 1_000_000 - 301):
        assert "within 300 s" in problem(SECRET, stamp, given, body, late_or_early, SeenSignatures())
    assert "within 300 s" in problem(SECRET, "soon", given, body, 1_000_000, SeenSignatures())


def test_a_click_names_the_button_incident_step_and_slack_user() -> None:
    click = parse_click(interaction("U0BOB", "incidentctl_reject", BUTTON))
    assert click == Click(user="U0BOB", team="T0ACME", incident="inc-1", step="gate", approve=False)
    assert parse_click(interaction("U0BOB", "incidentctl_approve", BUTTON)).approve is True
    with pytest.raises(Ignored, match="no button 'other'"):
        parse_click(interaction("U0BOB", "other", BUTTON))
    with pytest.raises(Ignored, match="does not name an incident"):
        parse_click(interaction("U0BOB", "incidentctl_approve", "gate"))
    with pytest.raises(Ignored, match="only its Approve and Reject"):
        parse_click(urlencode({"payload": json.dumps({"type": "view_submission"})}).encode())
    for not_slack in (b"{}", b"payload=not-json", urlencode({"payload": "[1]"}).encode()):
        with pytest.raises(Refused) as refused:
            parse_click(not_slack)
        assert refused.value.status == 400


def test_slack_users_map_to_people_of_the_configured_workspace(tmp_path: Path) -> None:
    _, bob_token_line = new_token("bob")
    path = tmp_path / "people.yaml"
    path.write_text(f"groups: {{sre: [bob, dana]}}\npeople:\n{bob_token_line[:-1]}, slack: U0BOB}}\n"
                    "  dana: {slack: W0DANA}\n")
    assert load_slack_users(path) == {"U0BOB": "bob", "W0DANA": "dana"}
    assert list(load_token_owners(path).values()) == ["bob"], "the token form works as before"
    click = Click(user="U0BOB", team="T0ACME", incident="i", step="gate", approve=True)
    assert person_of(click, load_slack_users(path), team="") == "bob"
    assert person_of(click, load_slack_users(path), team="T0ACME") == "bob"
    assert person_of(click, load_slack_users(path), team="T0OTHER") is None, "another workspace's user"
    assert person_of(Click("U0NOBODY", "T0ACME", "i", "gate", True), load_slack_users(path), "") is None

    for broken, reason in (("  bob: {slack: bob}\n", "maps each person to"),
                           ("  bob: {slack: U0BOB, token: x}\n", "maps each person to"),
                           ("  bob: {}\n", "maps each person to"),
                           ("  bob: {slack: U0BOB}\n  dana: {slack: U0BOB}\n",
                            "Slack user id 'U0BOB' is given to both bob and dana")):
        path.write_text(f"groups: {{sre: [bob]}}\npeople:\n{broken}")
        with pytest.raises(PeopleConfigError, match=reason):
            load_slack_users(path)


# ------------------------------------------------------------------ through the wire


GATED = """
name: slack-gated
version: 1
communication:
  channels:
    - {{type: slack, url: "{url}/hooks/slack"}}
  status_updates: {{SEV3: off}}
steps:
  - id: gate
    approval: {{message: "restart checkout?", groups: [sre], required: 2}}
  - id: fix
    action: util.echo
    params: {{message: fixed}}
"""


@pytest.fixture
async def slack_channel() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Slack's incoming webhook, local: what the Slack action posts."""
    posted: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        posted.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hooks/slack", hook)
    runner, url = await serve(app)
    yield url, posted
    await runner.cleanup()


@pytest.fixture
async def strict_queue(client: Client) -> AsyncIterator[str]:
    async with strict_worker(client, KEY, "slack") as queue:
        yield queue


@pytest.fixture
async def receiver(client: Client, strict_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                   ) -> AsyncIterator[RunningReceiver]:
    people = tmp_path / "people.yaml"
    people.write_text("groups:\n  sre: [bob, dana]\npeople:\n  bob: {slack: U0BOB}\n  dana: {slack: U0DANA}\n")
    monkeypatch.setenv("INCIDENTCTL_PEOPLE", str(people))
    monkeypatch.setenv("INCIDENTCTL_IDENTITY_SIGNING_KEY", signing_key_line(KEY))
    monkeypatch.setenv("INCIDENTCTL_SLACK_SIGNING_SECRET", SECRET)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token="webhook"), task_queue=strict_queue)
    yield running
    await running.stop()


async def click(receiver: RunningReceiver, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{receiver.url}/slack/interactions", data=body,
                                headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}) as answer:
            return answer.status, await answer.json()


async def test_slack_buttons_approve_as_the_mapped_person_and_refuse_everyone_else(
        client: Client, strict_queue: str, receiver: RunningReceiver,
        slack_channel: tuple[str, list[dict[str, Any]]]) -> None:
    url, posted = slack_channel
    plan = compile_text(GATED.format(url=url), "slack-gated.yaml")
    incident = await start_proven(client, plan, strict_queue, KEY, severity="SEV3")

    # The approval request on Slack: the whole text, plus Approve and Reject for this incident's step.
    request = await eventually(lambda: _posted(posted), lambda p: any("[APPROVAL NEEDED]" in m["text"] for m in p))
    message = next(m for m in request if "[APPROVAL NEEDED]" in m["text"])
    assert message["blocks"][0]["text"]["text"] == message["text"]
    (buttons,) = [b for b in message["blocks"] if b["type"] == "actions"]
    by_id = {e["action_id"]: e for e in buttons["elements"]}
    assert [by_id[a]["text"]["text"] for a in ("incidentctl_approve", "incidentctl_reject")] == ["Approve", "Reject"]
    assert json.loads(by_id["incidentctl_approve"]["value"]) == {"incident": incident, "step": "gate"}
    opened = next(m for m in request if m["text"].startswith("[INCIDENT OPENED]"))
    assert all(b["type"] != "actions" for b in opened["blocks"]), "only approval requests have buttons"
    approve = by_id["incidentctl_approve"]["value"]

    # bob clicks Approve: signed by Slack, decided as bob, proven to the strict worker.
    body = interaction("U0BOB", "incidentctl_approve", approve)
    headers = signed_headers(SECRET, body)
    assert await click(receiver, body, headers) == (200, {"response_type": "ephemeral", "replace_original": False,
                                                          "text": "approved as bob, 1/2"})
    # The same request again, a forged one, a stale one: refused, nothing decided.
    status, answer = await click(receiver, body, headers)
    assert status == 401 and "already received" in answer["error"]
    assert (await click(receiver, body, signed_headers("not-the-secret", body)))[0] == 401
    stale = interaction("U0DANA", "incidentctl_approve", approve)
    status, answer = await click(receiver, stale, signed_headers(SECRET, stale, timestamp=int(time.time()) - 600))
    assert status == 401 and "within 300 s" in answer["error"]
    # Someone who is not in the people file.
    stranger = interaction("U0NOBODY", "incidentctl_approve", approve)
    status, answer = await click(receiver, stranger, signed_headers(SECRET, stranger))
    assert status == 200 and "you are not in incidentctl's people file" in answer["text"]
    shown = await incidents.show_incident(client, incident)
    assert [v["approver"] for v in shown["pending_approvals"][0]["votes"]] == ["bob"]

    # dana's click completes it; a click after that is refused with the workflow's reason.
    body = interaction("U0DANA", "incidentctl_approve", approve)
    status, answer = await click(receiver, body, signed_headers(SECRET, body))
    assert (status, answer["text"]) == (200, "approved as dana, 2/2: gate is approved")
    late = interaction("U0BOB", "incidentctl_reject", by_id["incidentctl_reject"]["value"])
    status, answer = await click(receiver, late, signed_headers(SECRET, late))
    assert status == 200 and answer["text"].startswith("refused: ") and "no approval is waiting" in answer["text"]

    shown = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    assert [(v["approver"], v["comment"]) for v in shown["approvals"]] == [("bob", "via Slack"), ("dana", "via Slack")]


async def _posted(posted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(posted)


async def test_without_a_signing_secret_the_endpoint_is_off(client: Client, receiver: RunningReceiver,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INCIDENTCTL_SLACK_SIGNING_SECRET")
    body = interaction("U0BOB", "incidentctl_approve", BUTTON)
    status, answer = await click(receiver, body, signed_headers(SECRET, body))
    assert status == 404 and "INCIDENTCTL_SLACK_SIGNING_SECRET" in answer["error"]
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer webhook"}) as session:
        async with session.get(f"{receiver.url}/openapi.json") as listed:
            assert "/slack/interactions" in (await listed.json())["paths"]
