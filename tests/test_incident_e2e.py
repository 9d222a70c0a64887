"""End to end through the real Temporal dev server: the interpreter's every step kind and failure mode."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.library import compile_text
from incidentctl.localhttp import serve
from tests.conftest import TEST_TASK_QUEUE, eventually
from workflows.model import ApprovalDecision

FULL_RUNBOOK = """
name: e2e-full
version: 1
severity: SEV2
service: "${{ params.service }}"
parameters:
  service: {type: string, default: cart}
  hosts: {type: array, default: [a, b, c]}
steps:
  - id: diagnose
    action: util.echo
    params: {message: "diagnosing ${{ params.service }}", data: {crashlooping: 3}}
    outputs: {crashlooping: "${{ result.data.crashlooping }}"}
  - id: decide
    branch:
      - when: steps.diagnose.output.crashlooping > 0
        steps:
          - id: note_crash
            action: util.echo
            params: {message: "crash x${{ steps.diagnose.output.crashlooping }}"}
      - default:
          - id: note_fine
            action: util.echo
            params: {message: fine}
  - id: flaky
    action: util.fail
    params: {times: 2, message: transient}
    retry: {max_attempts: 4, initial_interval: 100ms, backoff: 1}
  - id: fan_out
    parallel:
      - name: left
        steps:
          - id: left_echo
            action: util.echo
            params: {message: left}
      - name: right
        steps:
          - id: right_echo
            action: util.echo
            params: {message: right}
  - id: per_host
    foreach: params.hosts
    as: host
    concurrency: 2
    steps:
      - id: host_echo
        action: util.echo
        params: {message: "${{ host }}-${{ loop.index }}"}
  - id: broken
    action: util.fail
    params: {times: -1, error_type: Boom, message: always broken}
    retry: {max_attempts: 1}
    on_failure: {goto: recover}
  - id: jumped_over
    action: util.echo
    params: {message: should not run}
  - id: recover
    action: util.echo
    params: {message: "recovered from ${{ steps.broken.error.type }}"}
  - id: gate
    approval:
      message: "Roll back ${{ params.service }}?"
      approvers: [alice, bob]
      required: 2
  - id: gate_signal
    approval: {message: second gate, approvers: [carol]}
  - id: verify
    check: util.echo
    params: {message: ok}
    assert: result.message == 'ok'
"""


async def start(client: Client, yaml_text: str, key: str, **kwargs: Any) -> str:
    plan = compile_text(yaml_text, "test.yaml")
    started = await incidents.start_incident(client, plan, key=key, task_queue=TEST_TASK_QUEUE, **kwargs)
    assert started.created
    return started.incident_id


async def result_of(client: Client, incident_id: str) -> dict[str, Any]:
    return await incidents.wait_for_runbook(client, incident_id)


def waiting_on(step: str):
    return lambda state: any(p["step"] == step for p in state["pending_approvals"])


async def test_full_runbook_runs_every_step_kind(client: Client, worker: Worker, unique: str) -> None:
    incident_id = await start(client, FULL_RUNBOOK, unique, started_by="tester")

    state = await eventually(lambda: incidents.show_incident(client, incident_id), waiting_on("gate"))
    assert state["status"] == "waiting_approval"
    assert state["pending_approvals"][0]["message"] == "Roll back cart?"

    # Refused before entering history: not an approver, then a duplicate vote.
    with pytest.raises(incidents.IncidentError, match="'mallory' may not approve step 'gate'"):
        await incidents.decide(client, incident_id, ApprovalDecision(approver="mallory", approve=True))
    receipt = await incidents.decide(client, incident_id, ApprovalDecision(approver="alice", approve=True,
                                                                            comment="looks right"))
    assert (receipt.outcome, receipt.approvals, receipt.required) == ("pending", 1, 2)
    with pytest.raises(incidents.IncidentError, match="'alice' has already voted"):
        await incidents.decide(client, incident_id, ApprovalDecision(approver="alice", approve=True))
    receipt = await incidents.decide(client, incident_id, ApprovalDecision(approver="bob", approve=True))
    assert receipt.outcome == "approved"

    await eventually(lambda: incidents.show_incident(client, incident_id), waiting_on("gate_signal"))
    handle = client.get_workflow_handle(incident_id)
    await handle.signal("approve", ApprovalDecision(approver="dave", approve=True, step="gate_signal"))
    await handle.signal("approve", ApprovalDecision(approver="carol", approve=True, step="gate_signal"))

    summary = await result_of(client, incident_id)
    steps = summary["steps"]
    assert summary["outcome"] == "succeeded"
    assert summary["service"] == "cart"
    assert steps["diagnose"]["output"] == {"crashlooping": 3}
    assert steps["note_crash"]["output"]["message"] == "crash x3"
    assert "note_fine" not in steps
    assert steps["decide"]["output"]["case"] == 0
    assert steps["flaky"]["output"] == {"attempts": 3}
    assert steps["left_echo"]["status"] == steps["right_echo"]["status"] == "succeeded"
    assert [steps[f"host_echo[{i}]"]["output"]["message"] for i in range(3)] == ["a-0", "b-1", "c-2"]
    assert [it["host_echo"]["message"] for it in steps["per_host"]["output"]["iterations"]] == ["a-0", "b-1", "c-2"]
    assert steps["broken"]["status"] == "failed"
    assert steps["broken"]["error"]["type"] == "Boom"
    assert "jumped_over" not in steps
    assert steps["recover"]["output"]["message"] == "recovered from Boom"
    assert steps["gate"]["output"]["approved"] is True
    assert [v["approver"] for v in summary["approvals"]] == ["alice", "bob", "carol"]
    assert steps["verify"]["status"] == "succeeded"

    timeline = await incidents.incident_timeline(client, incident_id)
    kinds = [e["kind"] for e in timeline]
    assert kinds[0] == "incident_started" and "runbook_finished" in kinds
    # No alerts: the runbook's success resolves the incident; it stays open until a person closes it.
    changes = [(e["detail"]["to"], e["detail"]["by"]) for e in timeline if e["kind"] == "status_changed"]
    assert changes[-2:] == [("mitigated", "runbook"), ("resolved", "runbook")]
    refused = [e for e in timeline if e["kind"] == "approval_refused"]
    assert refused and refused[0]["detail"]["approver"] == "dave"
    assert any(e["kind"] == "step_goto" and e["detail"]["target"] == "recover" for e in timeline)


ROLLBACK_RUNBOOK = """
name: e2e-rollback
version: 1
steps:
  - id: change
    action: util.echo
    params: {message: changed}
  - id: verify
    check: util.echo
    params: {message: still broken}
    assert: "result.message == 'healthy'"
    message: "service still unhealthy: ${{ result.message }}"
    on_failure: rollback
  - id: never
    action: util.echo
    params: {message: never}
rollback:
  - id: undo
    action: util.echo
    params: {message: "undo after ${{ steps.verify.error.message }}"}
"""


async def test_failed_check_runs_rollback(client: Client, worker: Worker, unique: str) -> None:
    incident_id = await start(client, ROLLBACK_RUNBOOK, unique)
    summary = await result_of(client, incident_id)
    assert summary["outcome"] == "rolled_back"
    assert summary["failure"]["step"] == "verify"
    assert summary["failure"]["message"] == "service still unhealthy: still broken"
    assert summary["steps"]["undo"]["output"]["message"] == "undo after service still unhealthy: still broken"
    assert "never" not in summary["steps"]


REJECT_RUNBOOK = """
name: e2e-reject
version: 1
steps:
  - id: gate
    approval: {message: "proceed?", approvers: [alice]}
  - id: after
    action: util.echo
    params: {message: after}
"""


async def test_rejected_approval_fails_incident_with_reason(client: Client, worker: Worker, unique: str) -> None:
    incident_id = await start(client, REJECT_RUNBOOK, unique)
    await eventually(lambda: incidents.show_incident(client, incident_id), waiting_on("gate"))
    receipt = await incidents.decide(client, incident_id, ApprovalDecision(approver="alice", approve=False,
                                                                            comment="too risky"))
    assert receipt.outcome == "rejected"
    summary = await result_of(client, incident_id)
    assert summary["outcome"] == "failed"
    failure = summary["failure"]
    assert (failure["step"], failure["type"], failure["message"]) == ("gate", "ApprovalRejected",
                                                                      "rejected by alice: too risky")
    assert [(v["approver"], v["approve"], v["comment"]) for v in failure["votes"]] == [("alice", False, "too risky")]
    assert "after" not in summary["steps"]
    with pytest.raises(incidents.IncidentError, match="approval refused"):
        await incidents.decide(client, incident_id, ApprovalDecision(approver="alice", approve=True))


async def test_starting_twice_gives_one_incident(client: Client, worker: Worker, unique: str) -> None:
    plan = compile_text(REJECT_RUNBOOK, "test.yaml")
    first = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE)
    second = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE)
    assert first.created and not second.created
    assert first.incident_id == second.incident_id == f"incident-e2e-reject-{unique}"
    await incidents.cancel_incident(client, first.incident_id)
    with pytest.raises(WorkflowFailureError):
        await client.get_workflow_handle(first.incident_id).result()
    state = await incidents.show_incident(client, first.incident_id)
    assert state["status"] == "cancelled"
    assert state["workflow_status"] == "CANCELED"


MANY_STEPS = "name: e2e-long\nversion: 1\nsteps:\n" + "".join(
    f"  - id: s{i}\n    action: util.echo\n    params: {{message: 'step {i}'}}\n" for i in range(30)
)


async def test_long_incident_continues_as_new_without_losing_state(
    client: Client, worker: Worker, unique: str
) -> None:
    incident_id = await start(client, MANY_STEPS, unique, history_event_limit=40)
    summary = await result_of(client, incident_id)
    assert summary["outcome"] == "succeeded"
    assert summary["runs"] > 2
    assert all(summary["steps"][f"s{i}"]["output"]["message"] == f"step {i}" for i in range(30))
    timeline = await incidents.incident_timeline(client, incident_id)
    started = [e["step"] for e in timeline if e["kind"] == "step_started"]
    assert started == [f"s{i}" for i in range(30)], "every step ran exactly once across runs"
    assert sum(e["kind"] == "continued_as_new" for e in timeline) == summary["runs"] - 1


WAIT_RUNBOOK = """
name: e2e-wait
version: 1
parameters:
  url: {type: string, required: true}
steps:
  - id: recovered
    wait_until: http.check
    params: {url: "${{ params.url }}"}
    until: result.ok
    interval: 200ms
    timeout: 20s
  - id: gave_up
    wait_until: http.check
    params: {url: "${{ params.url }}/never"}
    until: result.ok
    interval: 100ms
    timeout: 1s
    on_failure: continue
"""


async def test_wait_until_polls_real_http_until_healthy(client: Client, worker: Worker, unique: str) -> None:
    hits = {"n": 0}

    async def health(_: web.Request) -> web.Response:
        hits["n"] += 1
        return web.Response(status=200 if hits["n"] >= 3 else 503, text="ok" if hits["n"] >= 3 else "down")

    async def never(_: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/health/never", never)
    runner, url = await serve(app)
    try:
        incident_id = await start(client, WAIT_RUNBOOK, unique, params={"url": f"{url}/health"})
        summary = await result_of(client, incident_id)
    finally:
        await runner.cleanup()
    assert summary["outcome"] == "succeeded"
    assert summary["steps"]["recovered"]["output"]["polls"] == 3
    assert hits["n"] == 3
    assert summary["steps"]["gave_up"]["status"] == "failed"
    assert summary["steps"]["gave_up"]["error"]["type"] == "WaitTimeout"


async def test_list_filters_by_status_severity_and_runbook(client: Client, worker: Worker, unique: str) -> None:
    incident_id = await start(client, REJECT_RUNBOOK, unique, severity="SEV1")
    await eventually(lambda: incidents.show_incident(client, incident_id), waiting_on("gate"))
    rows = await eventually(
        lambda: incidents.list_incidents(client, status="waiting_approval", severity="SEV1", runbook="e2e-reject"),
        lambda rows: any(r["incident_id"] == incident_id for r in rows),
    )
    row = next(r for r in rows if r["incident_id"] == incident_id)
    assert (row["status"], row["severity"], row["runbook"]) == ("waiting_approval", "SEV1", "e2e-reject")
    none = await incidents.list_incidents(client, status="waiting_approval", severity="SEV4", runbook="e2e-reject")
    assert all(r["incident_id"] != incident_id for r in none)
    await incidents.cancel_incident(client, incident_id)
