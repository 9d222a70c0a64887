"""Only plans compiled with the deployment's key run: the signature alone, then incidents on the real dev
server and worker, a signed plan running and a hand-made or altered one failing before any action."""

from __future__ import annotations

import copy

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.library import compile_text
from incidentctl.payload_codec import new_key
from incidentctl.plan_signing import plans_required_from_env, sign_plan, verify_plan
from tests.conftest import TEST_TASK_QUEUE
from workflows.incident import IncidentWorkflow
from workflows.model import IncidentInput, wire
from workflows.plan_check import PlanCheck

RUNBOOK = """
name: signed-plan
version: 1
steps:
  - id: say
    action: util.echo
    params: {message: "only what was compiled"}
"""


def test_signatures_hold_only_for_the_plan_and_key_they_were_made_with(monkeypatch: pytest.MonkeyPatch) -> None:
    assert verify_plan(PlanCheck("abc", ""))["checked"] is False, "no keys: nothing is checked, and it says so"
    refused = verify_plan(PlanCheck("abc", ""), required=True)
    assert not refused["ok"] and "runs only signed plans but has no key" in refused["reason"]
    assert plans_required_from_env({}) and not plans_required_from_env({}, default=False)
    assert not plans_required_from_env({"INCIDENTCTL_PLAN_SIGNATURES": "optional"})
    assert plans_required_from_env({"INCIDENTCTL_PLAN_SIGNATURES": "required"}, default=False)
    monkeypatch.setenv("INCIDENTCTL_PLAN_KEYS", new_key("k2") + "," + new_key("k1"))
    signature = sign_plan("abc")
    assert signature.startswith("k2:") and verify_plan(PlanCheck("abc", signature))["ok"]
    assert "altered" in verify_plan(PlanCheck("abd", signature))["reason"]
    assert "not signed" in verify_plan(PlanCheck("abc", ""))["reason"]
    assert "key 'k9'" in verify_plan(PlanCheck("abc", "k9:00"))["reason"]


async def test_a_hand_made_or_altered_plan_fails_before_any_action(client: Client, worker: Worker, unique: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENTCTL_PLAN_KEYS", new_key("k1"))
    plan = compile_text(RUNBOOK, "signed.yaml")
    started = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE)
    summary = await incidents.wait_for_runbook(client, started.incident_id, timeout=60)
    assert summary["outcome"] == "succeeded"
    timeline = await incidents.incident_timeline(client, started.incident_id)
    [check] = [e for e in timeline if e["kind"] == "plan_check"]
    assert check["detail"] == {"ok": True, "checked": True, "reason": "signed with key 'k1'"}
    await incidents.cancel_incident(client, started.incident_id)

    altered = copy.deepcopy(plan.wire_json)
    altered["steps"][0]["params"]["message"] = "something else"
    cases = {"forged": (plan.wire_json, ""), "altered": (altered, sign_plan(plan.hash))}
    for name, (plan_json, signature) in cases.items():
        inp = IncidentInput(incident_id=f"incident-{name}-{unique}", plan=plan_json, plan_signature=signature)
        handle = await client.start_workflow(IncidentWorkflow.run, wire(inp), id=inp.incident_id,
                                             task_queue=TEST_TASK_QUEUE)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        assert "plan refused" in str(failed.value.cause), name
        events = (await handle.fetch_history()).events
        scheduled = [e for e in events if e.HasField("activity_task_scheduled_event_attributes")]
        assert scheduled == [], f"{name}: no action, no message: only the check ran (a local activity)"
        assert any(e.HasField("marker_recorded_event_attributes") for e in events)


async def test_a_worker_without_keys_runs_no_plan_unless_told_it_may(client: Client, unique: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from incidentctl.workers import build_worker

    monkeypatch.delenv("INCIDENTCTL_PLAN_KEYS", raising=False)
    plan = compile_text(RUNBOOK, "signed.yaml")
    queue = f"unsigned-{unique}"
    async with build_worker(client, task_queue=queue, plans_required=True):
        started = await incidents.start_incident(client, plan, key=unique, task_queue=queue)
        with pytest.raises(WorkflowFailureError) as failed:
            await client.get_workflow_handle(started.incident_id).result()
    assert "runs only signed plans but has no key" in str(failed.value.cause)
