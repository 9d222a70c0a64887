"""Verified people: a worker that requires them refuses every command without a proof from a signer it trusts,
whichever Temporal client sends it (a raw signal, an update), and takes the receiver's signed commands once.

Unit tests for the proof; the rest through the real wire: dev server, a worker of our own that requires
verified people, the receiver with a signing key and personal tokens, and the CLI as a process."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError

from incidentctl import client as incidents
from incidentctl.identity import MAX_AGE_S, check, new_signing_key, parse_trusted_keys, sign, signing_key_line
from incidentctl.identity_policy import IdentityPolicy
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from incidentctl.library import compile_text
from incidentctl.people_client import request_body
from tests.conftest import eventually
from tests.verified_people import gated_runbook, people_with_tokens, start_proven, strict_worker
from workflows.incident import IncidentWorkflow
from workflows.model import ApprovalDecision, Closure, Note, ReviewEdit

ROOT = Path(__file__).resolve().parents[1]
KEY = new_signing_key("k1")
TRUSTED = parse_trusted_keys(KEY.public_line())
GATED = gated_runbook("id-gated")


# ------------------------------------------------------------------ the proof itself


def vote(**changes: object) -> ApprovalDecision:
    return dataclasses.replace(ApprovalDecision(approver="bob", approve=True, step="gate", comment="go"), **changes)


def test_a_proof_holds_for_exactly_the_command_it_was_made_for() -> None:
    decision = vote()
    proof = sign(KEY, "incident-a", decision, now=1000)
    assert check(proof, TRUSTED, "incident-a", decision, 1010, {}).problem is None
    for altered in (vote(approver="mallory"), vote(approve=False), vote(step="other"), vote(comment="")):
        assert "does not match this command" in check(proof, TRUSTED, "incident-a", altered, 1010, {}).problem
    assert "does not match" in check(proof, TRUSTED, "incident-b", decision, 1010, {}).problem
    # The same person's other note is another command.
    note = Note(by="bob", text="x")
    assert "does not match" in check(sign(KEY, "i", Note(by="bob", text="y"), now=1000), TRUSTED, "i", note, 1010,
                                     {}).problem


def test_a_proof_is_refused_when_expired_early_reused_unknown_or_missing() -> None:
    decision = vote()
    proof = sign(KEY, "i", decision, now=1000)
    verdict = check(proof, TRUSTED, "i", decision, 1000, {})
    assert "expired" in check(proof, TRUSTED, "i", decision, 1000 + MAX_AGE_S + 1, {}).problem
    assert "in the future" in check(proof, TRUSTED, "i", decision, 800, {}).problem
    assert "used before" in check(proof, TRUSTED, "i", decision, 1001, {verdict.nonce: 1000}).problem
    other = new_signing_key("k2")
    assert "key 'k2', which this incident does not trust" in check(sign(other, "i", decision, now=1000), TRUSTED,
                                                                   "i", decision, 1000, {}).problem
    # A key id we trust with another key's signature: forged.
    forged = sign(dataclasses.replace(other, key_id="k1"), "i", decision, now=1000)
    assert "does not match" in check(forged, TRUSTED, "i", decision, 1000, {}).problem
    assert "bob is not verified" in check("", TRUSTED, "i", decision, 1000, {}).problem
    assert "malformed" in check("v1.k1.soon.n.sig", TRUSTED, "i", decision, 1000, {}).problem


def test_the_policy_is_required_by_default_and_says_what_is_missing() -> None:
    assert IdentityPolicy.from_env({}).required
    assert "trusts no signer" in IdentityPolicy.from_env({}).error
    assert IdentityPolicy.from_env({"INCIDENTCTL_IDENTITY_KEYS": KEY.public_line()}) == IdentityPolicy(keys=TRUSTED)
    assert not IdentityPolicy.from_env({"INCIDENTCTL_IDENTITY": "open"}).required
    assert "required or open" in IdentityPolicy.from_env({"INCIDENTCTL_IDENTITY": "maybe"}).error
    assert "each key is" in IdentityPolicy.from_env({"INCIDENTCTL_IDENTITY_KEYS": "k1=short"}).error
    # Only public keys are pinned in an incident: the signing key's seed never is.
    pinned = IdentityPolicy(keys=TRUSTED).pinned()
    assert signing_key_line(KEY).split("=", 1)[1] not in str(pinned)


def test_the_cli_sends_each_command_to_its_people_endpoint() -> None:
    assert request_body(vote(approve=False)) == ("approvals", {"approver": "bob", "decision": "reject",
                                                               "step": "gate", "comment": "go"})
    assert request_body(Closure(by="bob")) == ("close", {"by": "bob", "no_review": False})
    assert request_body(ReviewEdit(by="bob", fields={"summary": "s"})) == ("review", {"by": "bob",
                                                                                      "fields": {"summary": "s"}})


# ------------------------------------------------------------------ through the wire


@pytest.fixture
async def strict_queue(client: Client) -> AsyncIterator[str]:
    """A worker of its own that requires verified people and trusts KEY."""
    async with strict_worker(client, KEY, "identity") as queue:
        yield queue


@pytest.fixture
def people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return people_with_tokens(tmp_path, monkeypatch, KEY, ("bob",), sre=("bob",))


@pytest.fixture
async def receiver(client: Client, strict_queue: str, people: dict[str, str], tmp_path: Path
                   ) -> AsyncIterator[RunningReceiver]:
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "gated.yaml").write_text(GATED)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token="webhook"), task_queue=strict_queue,
                                   runbook_paths=[books])
    yield running
    await running.stop()


async def start_gated(client: Client, queue: str) -> str:
    incident = await start_proven(client, compile_text(GATED, "gated.yaml"), queue, KEY, severity="SEV3")
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["pending_approvals"])
    return incident


async def test_unverified_votes_are_refused_from_any_client_and_signed_ones_count_once(
        client: Client, strict_queue: str, people: dict[str, str]) -> None:
    incident = await start_gated(client, strict_queue)
    handle = client.get_workflow_handle(incident)

    # Straight to Temporal without a proof: the update is refused before it enters history...
    with pytest.raises(incidents.IncidentError, match="'bob' is not verified|bob is not verified"):
        await incidents.decide(client, incident, vote(comment=""))
    # ...and so is a raw signal, on the timeline.
    await handle.signal(IncidentWorkflow.approve, vote(comment="raw"))
    timeline = await eventually(lambda: incidents.incident_timeline(client, incident),
                                lambda t: any(e["kind"] == "approval_refused" for e in t))
    refused = next(e for e in timeline if e["kind"] == "approval_refused")
    assert "not verified" in refused["detail"]["reason"]
    assert (await incidents.show_incident(client, incident))["pending_approvals"][0]["votes"] == []

    # A proof made for another incident, or by a key this worker does not trust, does not count either.
    elsewhere = vote(comment="")
    elsewhere.proof = sign(KEY, "another-incident", elsewhere)
    with pytest.raises(incidents.IncidentError, match="made for another incident"):
        await incidents.decide(client, incident, elsewhere)
    untrusted = vote(comment="")
    untrusted.proof = sign(new_signing_key("k9"), incident, untrusted)
    with pytest.raises(incidents.IncidentError, match="does not trust"):
        await incidents.decide(client, incident, untrusted)

    # A note signed by the trusted key counts; the very same proof sent again does not.
    note = Note(by="bob", text="looking")
    note.proof = sign(KEY, incident, note)
    await incidents.add_note(client, incident, note)
    with pytest.raises(incidents.IncidentError, match="used before"):
        await incidents.add_note(client, incident, note)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(IncidentWorkflow.note, note)

    signed = vote(comment="")
    signed.proof = sign(KEY, incident, signed)
    receipt = await incidents.decide(client, incident, signed)
    assert receipt.outcome == "approved" and receipt.approver == "bob"
    shown = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    assert [n["by"] for n in shown["notes"]] == ["bob"]
    assert [v["approver"] for v in shown["approvals"]] == ["bob"]
    policy = next(e for e in await incidents.incident_timeline(client, incident) if e["kind"] == "identity_policy")
    assert policy["detail"] == {"required": True, "keys": ["k1"], "error": None}


async def test_people_act_through_the_receiver_and_the_cli_with_their_token(
        client: Client, dev_server, strict_queue: str, receiver: RunningReceiver, people: dict[str, str]) -> None:
    incident = await start_gated(client, strict_queue)
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "INCIDENTCTL_RECEIVER_URL": receiver.url,
           "INCIDENTCTL_TOKEN": people["bob"]}
    cli = [sys.executable, "-m", "incidentctl.cli"]

    async def run(*args: str, **extra: str) -> tuple[int, str, str]:
        # Not subprocess.run: the worker shares this event loop and must go on while the CLI waits for it.
        process = await asyncio.create_subprocess_exec(*cli, *args, cwd=ROOT, env={**env, **extra},
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), 120)
        return process.returncode or 0, out.decode(), err.decode()

    # Without a token the CLI goes straight to Temporal, and the worker says what is missing.
    code, _, err = await run("incident", "note", incident, "--as", "bob", "unverified", INCIDENTCTL_TOKEN="")
    assert code != 0 and "bob is not verified" in err and "Traceback" not in err
    # With bob's token it goes through the receiver, which signs for bob, and for nobody else.
    code, _, err = await run("incident", "note", incident, "--as", "alice", "as someone else")
    assert code != 0 and "the token is bob's" in err
    code, _, err = await run("incident", "note", incident, "--as", "bob", "checked the dashboards")
    assert code == 0, err
    code, out, err = await run("incident", "approve", incident, "--as", "bob")
    assert code == 0 and "outcome approved" in out, err

    shown = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    assert [n["text"] for n in shown["notes"]] == ["checked the dashboards"]
    assert [v["approver"] for v in shown["approvals"]] == ["bob"]


async def test_a_start_counts_only_with_its_starters_proof_and_the_starter_may_not_approve_it(
        client: Client, strict_queue: str, receiver: RunningReceiver, people: dict[str, str]) -> None:
    plan = compile_text(GATED, "gated.yaml")
    # Started straight on Temporal naming someone else as the starter: refused before anything runs.
    started = await incidents.start_incident(client, plan, key=uuid.uuid4().hex[:10], task_queue=strict_queue,
                                             started_by="bob")
    with pytest.raises(WorkflowFailureError) as failed:
        await client.get_workflow_handle(started.incident_id).result()
    assert "start refused" in str(failed.value.cause) and "bob is not verified" in str(failed.value.cause)
    # A proof for another starter, or another plan, does not count either.
    forged = await incidents.start_incident(client, plan, key=uuid.uuid4().hex[:10], task_queue=strict_queue,
                                            started_by="bob",
                                            prove_start=lambda incident, claim: sign(
                                                KEY, incident, dataclasses.replace(claim, started_by="carol")))
    with pytest.raises(WorkflowFailureError) as failed:
        await client.get_workflow_handle(forged.incident_id).result()
    assert "does not match" in str(failed.value.cause)

    # Through the receiver, as the token's owner: the start is signed for bob, who then may not approve it.
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {people['bob']}"}) as session:
        async with session.post(receiver.url + "/incidents", json={"runbook": "id-gated", "key": unique_key()}) as r:
            assert r.status == 200, await r.text()
            incident = (await r.json())["receipt"]["incident_id"]
        await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["pending_approvals"])
        async with session.post(f"{receiver.url}/incidents/{incident}/approvals", json={"decision": "approve"}) as r:
            answer = await r.json()
    assert r.status == 409 and "'bob' started this incident" in answer["error"]


def unique_key() -> str:
    return uuid.uuid4().hex[:10]
