"""Running a shipped runbook as an alert would: start the incident, approve as a person of config/people.yaml,
wait for the end. Used by the end-to-end runbook tests with the `cluster` fixture (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.library import compile_file
from tests.conftest import TEST_TASK_QUEUE, eventually
from workflows.model import ApprovalDecision

RUNBOOKS = Path(__file__).resolve().parents[1] / "runbooks"


def alert(severity: str = "warning", **labels: str) -> dict[str, Any]:
    return {"labels": {"severity": severity, **labels}, "annotations": {"summary": "from a test"},
            "status": "firing"}


async def start(client: Client, runbook: str, unique: str, labels: dict[str, str], **params: Any) -> str:
    plan = compile_file(RUNBOOKS / f"{runbook}.yaml")
    started = await incidents.start_incident(client, plan, alert=alert(**labels), params=params, key=unique,
                                             task_queue=TEST_TASK_QUEUE, started_by="alertmanager")
    return started.incident_id


def waiting_on(step: str):
    return lambda state: any(p["step"] == step for p in state["pending_approvals"])


async def approve(client: Client, incident_id: str, step: str, who: str = "alice") -> dict[str, Any]:
    """Wait until `step` asks, approve it as `who`; the pending approval (with its message) as it was asked."""
    state = await eventually(lambda: incidents.show_incident(client, incident_id), waiting_on(step), timeout=60)
    await incidents.decide(client, incident_id, ApprovalDecision(approver=who, approve=True, step=step))
    return next(p for p in state["pending_approvals"] if p["step"] == step)


async def finished(client: Client, incident_id: str) -> dict[str, Any]:
    return await incidents.wait_for_runbook(client, incident_id)
