"""Determinism guard: recorded incident histories must replay on the current workflow code.

A change to IncidentWorkflow that would break running incidents (nondeterminism) fails here before it ships.
Re-record with `INCIDENTCTL_RECORD_HISTORY=1 pytest tests/test_replay.py` only for an intended, versioned change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

from incidentctl import client as incidents
from incidentctl.library import compile_text
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.test_incident_e2e import FULL_RUNBOOK
from workflows.context import IncidentRun
from workflows.incident import IncidentWorkflow
from workflows.model import RUNNING, ApprovalDecision, Closure, IncidentInput, Note, ReviewEdit

HISTORIES = Path(__file__).parent / "histories"
# Recorded before incidents had a lifecycle (the workflow ended with its runbook): still replays on that path.
BEFORE_LIFECYCLE = HISTORIES / "full_runbook.json"
# Recorded with the lifecycle: runbook, resolved (no alerts: by the runbook's success), a note, the review,
# closed by a person.
WITH_LIFECYCLE = HISTORIES / "full_runbook_lifecycle.json"


async def _record(client: Client, key: str) -> WorkflowHistory:
    plan = compile_text(FULL_RUNBOOK, "test.yaml")
    started = await incidents.start_incident(client, plan, key=key, task_queue=TEST_TASK_QUEUE)
    incident = started.incident_id
    for step, approvers in (("gate", ("alice", "bob")), ("gate_signal", ("carol",))):
        await eventually(lambda: incidents.show_incident(client, incident),
                         lambda s, step=step: any(p["step"] == step for p in s["pending_approvals"]))
        for approver in approvers:
            await incidents.decide(client, incident, ApprovalDecision(approver=approver, approve=True, step=step))
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    await incidents.add_note(client, incident, Note(by="bob", text="verified by hand"))
    await incidents.update_review(client, incident, ReviewEdit(by="alice", fields={
        "root_cause": "a flaky dependency", "completed": True}))
    await incidents.close_incident(client, incident, Closure(by="alice"))
    handle = client.get_workflow_handle(incident)
    assert (await handle.result())["status"] == "closed"
    return await handle.fetch_history()


async def test_fresh_history_replays(client: Client, worker: Worker, unique: str) -> None:
    history = await _record(client, unique)
    if os.environ.get("INCIDENTCTL_RECORD_HISTORY"):
        WITH_LIFECYCLE.write_text(history.to_json())
    result = await Replayer(workflows=[IncidentWorkflow]).replay_workflow(history)
    assert result.replay_failure is None


@pytest.mark.parametrize("recorded", [BEFORE_LIFECYCLE, WITH_LIFECYCLE], ids=lambda p: p.stem)
async def test_recorded_history_still_replays(recorded: Path) -> None:
    assert recorded.exists(), "record it once with INCIDENTCTL_RECORD_HISTORY=1"
    history = WorkflowHistory.from_json(recorded.stem, recorded.read_text())
    result = await Replayer(workflows=[IncidentWorkflow]).replay_workflow(history)
    assert result.replay_failure is None
    assert len(history.events) > 50


FIRST_STEPS = {
    # Each patch is asked first in the workflow task that also ran the admission's local activity.
    "approval_first": "name: replay-approval-first\nversion: 1\nsteps:\n"
                      "  - {id: gate, approval: {message: go?, approvers: [alice]}}\n"
                      "  - {id: after, action: util.echo, params: {message: after}}\n",
    "action_first": "name: replay-action-first\nversion: 1\nsteps:\n"
                    "  - {id: first, action: util.echo, params: {message: first}}\n"
                    "  - {id: gate, approval: {message: go?, approvers: [alice]}}\n",
}


@pytest.mark.parametrize("runbook", FIRST_STEPS, ids=list(FIRST_STEPS))
async def test_another_worker_replays_an_incident_its_first_worker_started(client: Client, unique: str,
                                                                            runbook: str) -> None:
    """What a worker restart does: the next worker rebuilds the incident from its history (no cache)."""
    from incidentctl.workers import build_worker

    queue = f"replay-{unique}"
    plan = compile_text(FIRST_STEPS[runbook], "first.yaml")
    async with build_worker(client, task_queue=queue):
        # Not eagerly: the first workflow task polled, as a worker in another process gets it.
        started = await incidents.start_incident(client, plan, key=unique, task_queue=queue, eager_start=False)
        await eventually(lambda: incidents.show_incident(client, started.incident_id),
                         lambda s: s["pending_approvals"])
    async with build_worker(client, task_queue=queue):
        await incidents.decide(client, started.incident_id, ApprovalDecision(approver="alice", approve=True))
        summary = await incidents.wait_for_runbook(client, started.incident_id, timeout=60)
    assert summary["outcome"] == "succeeded"


async def test_an_incident_its_first_alert_started_replays_with_its_alert_updates(client: Client,
                                                                                   unique: str) -> None:
    """As the receiver starts one (update-with-start), then two more alert updates; rebuilt by a second worker
    and by the Replayer. (A nondeterminism error seen on such an incident under load came from another workflow's
    closed coroutine: docs/design.md, "Code that outlives its workflow".)"""
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    from incidentctl.workers import build_worker
    from workflows.model import AlertNotification, IncidentInput, wire

    queue = f"replay-alert-{unique}"
    plan = compile_text(FIRST_STEPS["action_first"], "first.yaml")
    incident = f"incident-replay-alert-{unique}"

    def alert(name: str, status: str = "firing") -> dict:
        return {"fingerprint": f"{name}-{unique}", "status": status, "startsAt": "2026-12-01T00:00:00Z",
                "labels": {"alertname": name, "service": "cart"}}

    inp = IncidentInput(incident_id=incident, plan=plan.wire_json, params={}, alert=alert("First"), severity="SEV3",
                        started_by="alert:First", track_refires=True)
    async with build_worker(client, task_queue=queue):
        start = WithStartWorkflowOperation(IncidentWorkflow.run, wire(inp), id=incident, task_queue=queue,
                                           id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        receipt = await client.execute_update_with_start_workflow(
            IncidentWorkflow.alert_notification, AlertNotification(alerts=[alert("First")]),
            start_workflow_operation=start)
        assert receipt.new_alerts == 1
        handle = client.get_workflow_handle(incident)
        await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["pending_approvals"])
        for update in (alert("Second"), alert("Second", "resolved")):
            await handle.execute_update(IncidentWorkflow.alert_notification, AlertNotification(alerts=[update]))
    async with build_worker(client, task_queue=queue):
        shown = await incidents.show_incident(client, incident)  # answered by a worker that rebuilt it
        assert shown["pending_approvals"] and len(shown["alerts"]) == 2
        await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True))
        summary = await incidents.wait_for_runbook(client, incident, timeout=60)
    assert summary["outcome"] == "succeeded"
    history = await handle.fetch_history()
    await handle.terminate("test over")
    assert [e.event_id for e in history.events if e.HasField("workflow_execution_update_completed_event_attributes")]
    result = await Replayer(workflows=[IncidentWorkflow]).replay_workflow(history)
    assert result.replay_failure is None


# What the garbage collector does to an evicted incident's suspended wait, done here on purpose: the coroutine is
# left by one workflow instance and closed while another one runs.
LEFT_BEHIND: list[Any] = []


@workflow.defn
class LeavesAWait:
    @workflow.run
    async def run(self, inp: IncidentInput) -> None:
        incident = IncidentRun(inp)

        async def wait() -> None:  # as an approval waits: its `finally` sets the status
            try:
                await workflow.wait_condition(lambda: False)
            finally:
                incident.set_status(RUNNING)

        left = wait()
        left.send(None)  # suspended at the wait, as an evicted incident leaves it
        LEFT_BEHIND.append(left)


@workflow.defn
class ClosesWhatWasLeft:
    @workflow.run
    async def run(self) -> None:
        LEFT_BEHIND.pop().close()


async def test_code_of_an_incident_closed_inside_another_workflow_adds_nothing_to_its_history(
        client: Client, unique: str) -> None:
    """Seen under load as a nondeterminism error: an evicted incident's approval wait, closed by the garbage
    collector while another workflow ran, set its status there; that history held an upsert its own code never
    makes, and did not replay."""
    queue = f"left-behind-{unique}"
    plan = compile_text(FIRST_STEPS["action_first"], "first.yaml")
    inp = IncidentInput(incident_id=f"left-{unique}", plan=plan.wire_json, params={})
    async with Worker(client, task_queue=queue, workflows=[LeavesAWait, ClosesWhatWasLeft],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        await client.execute_workflow(LeavesAWait.run, inp, id=f"leaves-{unique}", task_queue=queue)
        closer = await client.start_workflow(ClosesWhatWasLeft.run, id=f"closes-{unique}", task_queue=queue)
        await closer.result()
    events = (await closer.fetch_history()).events
    assert not [e for e in events if e.HasField("upsert_workflow_search_attributes_event_attributes")], \
        [EventType.Name(e.event_type) for e in events]
    assert not LEFT_BEHIND
