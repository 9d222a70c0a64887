"""Determinism guard: recorded incident histories must replay on the current workflow code.

A change to IncidentWorkflow that would break running incidents (nondeterminism) fails here before it ships.
Re-record with `INCIDENTCTL_RECORD_HISTORY=1 pytest tests/test_replay.py` only for an intended, versioned change.
"""

from __future__ import annotations

import os
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, Worker

from incidentctl import client as incidents
from incidentctl.library import compile_text
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.test_incident_e2e import FULL_RUNBOOK
from workflows.incident import IncidentWorkflow
from workflows.model import ApprovalDecision

HISTORY = Path(__file__).parent / "histories" / "full_runbook.json"


async def _record(client: Client, key: str) -> WorkflowHistory:
    plan = compile_text(FULL_RUNBOOK, "test.yaml")
    started = await incidents.start_incident(client, plan, key=key, task_queue=TEST_TASK_QUEUE)
    incident = started.incident_id
    for step, approvers in (("gate", ("alice", "bob")), ("gate_signal", ("carol",))):
        await eventually(lambda: incidents.show_incident(client, incident),
                         lambda s, step=step: any(p["step"] == step for p in s["pending_approvals"]))
        for approver in approvers:
            await incidents.decide(client, incident, ApprovalDecision(approver=approver, approve=True, step=step))
    handle = client.get_workflow_handle(incident)
    await handle.result()
    return await handle.fetch_history()


async def test_fresh_history_replays(client: Client, worker: Worker, unique: str) -> None:
    history = await _record(client, unique)
    if os.environ.get("INCIDENTCTL_RECORD_HISTORY"):
        HISTORY.write_text(history.to_json())
    result = await Replayer(workflows=[IncidentWorkflow]).replay_workflow(history)
    assert result.replay_failure is None


async def test_recorded_history_still_replays() -> None:
    assert HISTORY.exists(), "record it once with INCIDENTCTL_RECORD_HISTORY=1"
    history = WorkflowHistory.from_json("recorded-full-runbook", HISTORY.read_text())
    result = await Replayer(workflows=[IncidentWorkflow]).replay_workflow(history)
    assert result.replay_failure is None
    assert len(history.events) > 50
