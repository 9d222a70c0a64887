"""People's commands over HTTP (real receiver, dev server and worker): each as the person a personal token
names, never the name in a body, never with the alert senders' webhook token; refusals with their reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from incidentctl.library import compile_text
from incidentctl.people import PeopleConfigError, load_token_owners, new_token
from tests.conftest import TEST_TASK_QUEUE, eventually

WEBHOOK_TOKEN = "webhook-token"
GATED = """
name: pa-gated
version: 1
steps:
  - id: strict
    approval: {message: "restart?", groups: [sre]}
  - id: fix
    action: util.echo
    params: {message: fixed}
"""
FOLLOW_UP = """
name: pa-follow-up
version: 1
steps:
  - id: check
    action: util.echo
    params: {message: "checked by a person's run"}
"""


@pytest.fixture
def tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    made = {name: new_token(name) for name in ("bob", "mallory")}
    people = tmp_path / "people.yaml"
    people.write_text("groups:\n  sre: [alice, bob]\npeople:\n" + "\n".join(line for _, line in made.values()) + "\n")
    monkeypatch.setenv("INCIDENTCTL_PEOPLE", str(people))
    return {name: token for name, (token, _) in made.items()}


@pytest.fixture
async def receiver(client: Client, worker: Worker, tmp_path: Path) -> AsyncIterator[RunningReceiver]:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "follow-up.yaml").write_text(FOLLOW_UP)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token=WEBHOOK_TOKEN),
                                   task_queue=TEST_TASK_QUEUE, runbook_paths=[books])
    yield running
    await running.stop()


async def call(receiver: RunningReceiver, token: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        method = session.get if body is None else session.post
        kwargs = {} if body is None else {"json": body}
        async with method(receiver.url + path, headers=headers, **kwargs) as response:
            return response.status, await response.json()


async def test_every_command_over_http_as_the_tokens_owner(receiver: RunningReceiver, client: Client,
                                                           tokens: dict[str, str], unique: str) -> None:
    started = await incidents.start_incident(client, compile_text(GATED, "gated.yaml"), key=unique,
                                             task_queue=TEST_TASK_QUEUE, started_by="carol", severity="SEV3")
    incident = started.incident_id
    base = f"/incidents/{incident}"
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["pending_approvals"])
    bob, mallory = tokens["bob"], tokens["mallory"]

    status, answer = await call(receiver, WEBHOOK_TOKEN, base + "/approvals", {"decision": "approve"})
    assert status == 401 and "webhook token is not a person's" in answer["error"]
    status, answer = await call(receiver, bob, base + "/approvals", {"approver": "alice", "decision": "approve"})
    assert status == 403 and "the token is bob's; the body says 'alice'" in answer["error"]
    status, answer = await call(receiver, mallory, base + "/approvals", {"decision": "approve"})
    assert status == 409 and "'mallory' may not approve step 'strict'" in answer["error"]
    status, answer = await call(receiver, bob, base + "/approvals", {"decision": "maybe"})
    assert status == 422 and "approve" in answer["error"]
    status, answer = await call(receiver, bob, base + "/approvals", {"decision": "approve", "extra": 1})
    assert status == 422 and "unknown field(s) extra" in answer["error"]
    status, answer = await call(receiver, bob, base + "/sing", {})
    assert status == 404 and "no command 'sing'" in answer["error"]
    status, _ = await call(receiver, bob, "/incidents/incident-nope/notes", {"text": "x"})
    assert status == 404

    status, answer = await call(receiver, bob, base + "/notes", {"text": "looking at the dashboards"})
    assert status == 200 and answer["by"] == "bob"
    assert (await call(receiver, bob, base + "/acknowledge", {}))[0] == 200
    status, answer = await call(receiver, bob, base + "/severity", {"severity": "SEV2", "reason": "customers"})
    assert status == 200 and answer["receipt"]["detail"]["severity"] == "SEV2"
    status, answer = await call(receiver, bob, base + "/approvals", {"decision": "approve", "comment": "go"})
    assert status == 200 and answer["receipt"]["outcome"] == "approved" and answer["receipt"]["approver"] == "bob"

    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    status, answer = await call(receiver, bob, base + "/resolve", {"summary": "again"})
    assert status == 409 and "already resolved" in answer["error"]
    assert (await call(receiver, bob, base + "/reopen", {"reason": "still slow"}))[0] == 200
    status, answer = await call(receiver, bob, base + "/runbooks", {"runbook": "pa-follow-up"})
    assert status == 200, answer
    status, answer = await call(receiver, bob, base + "/runbooks", {"runbook": "../../etc/passwd"})
    assert status == 422 and "no runbook named" in answer["error"]
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    status, answer = await call(receiver, bob, base + "/close", {})
    assert status == 409 and "closed after its review" in answer["error"]
    fields = {"root_cause": "a bad restart", "completed": True}
    assert (await call(receiver, bob, base + "/review", {"fields": fields}))[0] == 200
    assert (await call(receiver, bob, base + "/close", {"reason": "done"}))[0] == 200

    status, shown = await call(receiver, bob, base)
    assert status == 200 and shown["status"] == "closed" and shown["closed_by"] == "bob"
    assert shown["notes"][0]["by"] == "bob" and shown["roles"]["acknowledged_by"] == "bob"
    assert shown["severity_changes"][0]["by"] == "bob"
    assert [r["runbook"] for r in shown["runbook_runs"]][-1] == "pa-follow-up"
    assert (await call(receiver, WEBHOOK_TOKEN, base))[0] == 401


def test_the_people_file_keeps_only_token_hashes(tmp_path: Path) -> None:
    token, line = new_token("erin")
    assert token not in line and token.startswith("ictl_")
    people = tmp_path / "people.yaml"
    people.write_text(f"groups: {{sre: [erin]}}\npeople:\n{line}\n")
    assert list(load_token_owners(people).values()) == ["erin"]
    people.write_text("groups: {sre: [erin]}\npeople:\n  erin: {token: plain-text}\n")
    with pytest.raises(PeopleConfigError, match="maps each person to"):
        load_token_owners(people)


def test_the_openapi_document_lists_every_command_with_its_fields() -> None:
    from incidentctl.intake.openapi import openapi_document

    paths = openapi_document()["paths"]
    notes = paths["/incidents/{incident}/notes"]["post"]
    assert notes["security"] == [{"personalToken": []}]
    assert notes["requestBody"]["content"]["application/json"]["schema"]["required"] == ["text"]
    assert {"approvals", "severity", "resolve", "reopen", "close", "review", "runbooks", "acknowledge"} <= {
        path.rsplit("/", 1)[1] for path in paths if path.startswith("/incidents/{incident}/")}
