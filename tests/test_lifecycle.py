"""An incident lives until people close it: bursts, re-fires, reruns, cancel, another runbook, continue-as-new.

Real dev server, real worker, real receiver over HTTP (docs/lifecycle.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from incidentctl.library import compile_text
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.test_receiver import TOKEN, alertmanager, post
from workflows.model import Closure, Note, Resolution, SeverityChange

BURST = """
name: lc-burst
version: 1
trigger: {alertname: LcBurst, group_by: [service]}
steps:
  - id: first
    action: util.fail
    params: {times: -1, error_type: NoKubeconfig, message: "no kubeconfig on this worker"}
    retry: {max_attempts: 1}
"""

RERUN = """
name: lc-rerun
version: 1
trigger: {alertname: LcRerun, group_by: [service]}
resolve: {quiet_for: 1s, reopen_window: 1h, on_refire: rerun}
parameters:
  service: {type: string, default: "${{ alert.labels.service }}"}
steps:
  - id: fix
    action: util.echo
    params: {message: "fixing ${{ params.service }}"}
"""


@pytest.fixture(scope="module")
async def receiver(client: Client, worker: Worker, tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[RunningReceiver]:
    books = tmp_path_factory.mktemp("lifecycle-runbooks")
    (books / "burst.yaml").write_text(BURST)
    (books / "rerun.yaml").write_text(RERUN)
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token=TOKEN), task_queue=TEST_TASK_QUEUE,
                                   runbook_paths=[books])
    yield running
    await running.stop()


def alert(name: str, service: str, starts_at: str = "2026-12-01T08:00:00Z") -> dict[str, Any]:
    return {"labels": {"alertname": name, "service": service, "severity": "warning"}, "startsAt": starts_at}


async def test_a_burst_on_a_failing_runbook_is_one_incident_that_needs_attention(
        receiver: RunningReceiver, client: Client, unique: str) -> None:
    """50 identical notifications at once, the first step failing at once: one incident, held open, no re-fire."""
    body = alertmanager("firing", [alert("LcBurst", f"svc-{unique}")], {"service": f"svc-{unique}"})
    answers = await asyncio.gather(*(post(receiver, "/alertmanager", body) for _ in range(50)))
    assert [status for status, _ in answers] == [200] * 50
    (incident,) = {payload["incidents"][0]["incident_id"] for _, payload in answers}
    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: s["status"] == "needs_attention" and s["notifications"] == 50, timeout=60)
    assert state["outcome"] == "failed" and state["refires"]["count"] == 0
    assert next(iter(state["alerts"].values()))["refired"] == 0
    runs = [e async for e in client.list_workflows(f"WorkflowId = '{incident}'")]
    assert len(runs) == 1 and state["workflow_status"] == "RUNNING", "held open for people, not ended"
    # More copies after the runbook ended still reach the same open incident.
    status, later = await post(receiver, "/alertmanager", body)
    assert status == 200 and later["incidents"][0]["result"] == "updated"
    await incidents.cancel_incident(client, incident)


async def test_a_refire_inside_the_window_reruns_the_runbook(receiver: RunningReceiver, client: Client,
                                                            unique: str) -> None:
    service = f"svc-{unique}"
    first = alert("LcRerun", service)
    status, answer = await post(receiver, "/alertmanager", alertmanager("firing", [first], {"service": service}))
    incident = answer["incidents"][0]["incident_id"]
    state = await incidents.wait_for_runbook(client, incident)
    assert (state["outcome"], state["status"]) == ("succeeded", "mitigated"), "its alert still fires"
    await post(receiver, "/alertmanager", alertmanager("resolved", [first], {"service": service}))
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")

    refire = alert("LcRerun", service, "2026-12-01T09:00:00Z")
    await post(receiver, "/alertmanager", alertmanager("firing", [refire], {"service": service}))
    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: len(s["runbook_runs"]) == 2 and s["status"] == "mitigated")
    assert [r["by"] for r in state["runbook_runs"]] == ["alert:LcRerun", "alerts"]
    assert state["steps"]["run2/fix"]["output"]["message"] == f"fixing {service}"
    kinds = [e["kind"] for e in await incidents.incident_timeline(client, incident)]
    assert kinds.count("reopened") == 1 and kinds.count("runbook_started") == 2
    await post(receiver, "/alertmanager", alertmanager("resolved", [refire], {"service": service}))
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    await incidents.close_incident(client, incident, Closure(by="alice"))
    summary = await client.get_workflow_handle(incident).result()
    assert summary["status"] == "closed" and summary["times"]["closed_at"] and summary["refires"]["count"] == 0


CANCELLABLE = """
name: lc-cancel
version: 1
on_cancel:
  - id: undo
    action: util.echo
    params: {message: "putting back what ${{ incident.id }} changed"}
steps:
  - {id: nap, sleep: 1h}
"""


async def test_cancel_runs_the_on_cancel_section(client: Client, worker: Worker, unique: str) -> None:
    started = await incidents.start_incident(client, compile_text(CANCELLABLE, "c.yaml"), key=unique,
                                             task_queue=TEST_TASK_QUEUE)
    incident = started.incident_id
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["current_steps"] == ["nap"])
    await incidents.cancel_incident(client, incident)
    with pytest.raises(WorkflowFailureError):
        await client.get_workflow_handle(incident).result()
    state = await incidents.show_incident(client, incident)
    assert state["status"] == "cancelled"
    assert state["steps"]["undo"]["output"]["message"] == f"putting back what {incident} changed"
    kinds = [e["kind"] for e in await incidents.incident_timeline(client, incident)]
    assert kinds.index("cancel_requested") < kinds.index("step_succeeded") < kinds.index("incident_cancelled")
    assert kinds.count("incident_cancelled") == 1


FAILING = """
name: lc-failing
version: 1
severity: SEV2
resolve: {requires: person}
steps:
  - {id: diagnose, action: util.fail, params: {times: -1, message: "broken"}, retry: {max_attempts: 1}}
"""

OTHER = """
name: lc-other
version: 1
parameters:
  target: {type: string, required: true}
steps:
  - {id: diagnose, action: util.echo, params: {message: "looking at ${{ params.target }}"}}
"""


async def test_people_run_another_runbook_resolve_and_close_an_incident_that_needs_attention(
        client: Client, worker: Worker, unique: str) -> None:
    started = await incidents.start_incident(client, compile_text(FAILING, "f.yaml"), key=unique,
                                             task_queue=TEST_TASK_QUEUE, started_by="oncall")
    incident = started.incident_id
    state = await incidents.wait_for_runbook(client, incident)
    assert (state["status"], state["outcome"]) == ("needs_attention", "failed")
    with pytest.raises(incidents.IncidentError, match="missing required parameter 'target'"):
        await incidents.run_runbook(client, incident, compile_text(OTHER, "o.yaml"), {}, "bob")
    receipt = await incidents.run_runbook(client, incident, compile_text(OTHER, "o.yaml"), {"target": "db"}, "bob")
    assert receipt.status in ("mitigating", "mitigated")
    state = await eventually(lambda: incidents.show_incident(client, incident),
                             lambda s: s["status"] == "mitigated")
    assert [(r["runbook"], r["outcome"], r["by"]) for r in state["runbook_runs"]] == [
        ("lc-failing", "failed", "oncall"), ("lc-other", "succeeded", "bob")]
    assert state["steps"]["lc-other/diagnose"]["output"]["message"] == "looking at db"
    assert state["steps"]["diagnose"]["status"] == "failed", "the first runbook's records are kept apart"

    await incidents.change_severity(client, incident, SeverityChange(by="bob", severity="SEV1", reason="wider"))
    listed = await eventually(lambda: incidents.list_incidents(client, severity="SEV1", runbook="lc-failing"),
                              lambda rows: any(r["incident_id"] == incident for r in rows))
    assert next(r for r in listed if r["incident_id"] == incident)["status"] == "mitigated"
    with pytest.raises(incidents.IncidentError, match="only a resolved incident can be closed"):
        await incidents.close_incident(client, incident, Closure(by="bob", no_review=True))
    await incidents.resolve_incident(client, incident, Resolution(by="bob", summary="restarted db by hand"))
    state = await incidents.show_incident(client, incident)
    assert state["status"] == "resolved" and state["resolution"]["by"] == "bob"
    await incidents.close_incident(client, incident, Closure(by="bob", no_review=True))
    summary = await client.get_workflow_handle(incident).result()
    assert summary["status"] == "closed" and summary["severity_changes"][0]["to"] == "SEV1"


async def test_an_open_incident_continues_as_new_and_keeps_everything(client: Client, worker: Worker,
                                                                     unique: str) -> None:
    text = "name: lc-long\nversion: 1\nsteps:\n  - {id: only, action: util.echo, params: {message: hi}}\n"
    started = await incidents.start_incident(client, compile_text(text, "l.yaml"), key=unique,
                                             task_queue=TEST_TASK_QUEUE, history_event_limit=60)
    incident = started.incident_id
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    for i in range(25):
        await incidents.add_note(client, incident, Note(by="bob", text=f"note {i}"))
    state = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["runs"] >= 2)
    assert [n["text"] for n in state["notes"]] == [f"note {i}" for i in range(25)]
    assert state["status"] == "resolved" and state["resolution"]["by"] == "runbook"
    await incidents.close_incident(client, incident, Closure(by="bob"))
    summary = await client.get_workflow_handle(incident).result()
    assert summary["status"] == "closed" and summary["runs"] >= 2


def test_lifecycle_doc_has_its_state_diagram() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "lifecycle.md").read_text()
    for status in ("open", "mitigating", "waiting_approval", "rolling_back", "mitigated", "needs_attention",
                   "monitoring", "resolved", "closed", "cancelled"):
        assert status in doc
