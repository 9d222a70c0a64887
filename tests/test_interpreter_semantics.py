"""Interpreter semantics through the real dev server: timeouts, retries, jumps, dry-run, approval rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.library import compile_text
from tests.conftest import TEST_TASK_QUEUE, eventually
from workflows.model import ApprovalDecision


async def run_to_end(client: Client, text: str, key: str, **kwargs: Any) -> dict[str, Any]:
    plan = compile_text(text, "semantics.yaml")
    started = await incidents.start_incident(client, plan, key=key, task_queue=TEST_TASK_QUEUE, **kwargs)
    return await incidents.wait_for_runbook(client, started.incident_id)


async def test_step_timeout_and_non_retryable_errors(client: Client, worker: Worker, unique: str) -> None:
    summary = await run_to_end(client, """
name: sem-timeouts
version: 1
steps:
  - id: too_slow
    action: util.sleep
    params: {seconds: 5}
    timeout: 500ms
    retry: {max_attempts: 1}
    on_failure: continue
  - id: permanent
    action: util.fail
    params: {times: 3, error_type: NotFound}
    retry: {max_attempts: 5, initial_interval: 100ms, non_retryable_errors: [NotFound]}
    on_failure: continue
  - id: flag_permanent
    action: util.fail
    params: {times: 3, non_retryable: true}
    retry: {max_attempts: 5, initial_interval: 100ms}
    on_failure: continue
  - id: eventually_ok
    action: util.fail
    params: {times: 1}
    retry: {max_attempts: 2, initial_interval: 100ms}
""", unique)
    steps = summary["steps"]
    assert summary["outcome"] == "succeeded"
    assert steps["too_slow"]["error"]["type"] == "Timeout"
    assert steps["permanent"]["error"]["type"] == "NotFound"
    assert steps["flag_permanent"]["error"]["type"] == "ActionFailed"
    assert steps["eventually_ok"]["output"] == {"attempts": 2}


async def test_when_next_and_end_inside_a_branch(client: Client, worker: Worker, unique: str) -> None:
    summary = await run_to_end(client, """
name: sem-jumps
version: 1
parameters:
  mode: {type: string, default: quick}
steps:
  - id: skipped
    when: params.mode == 'slow'
    action: util.echo
    params: {message: slow}
  - id: jump
    when: params.mode == 'quick'
    action: util.echo
    params: {message: jump}
    next: landing
  - id: jumped_over
    action: util.echo
    params: {message: never}
  - id: landing
    branch:
      - when: params.mode == 'quick'
        steps:
          - id: finish_early
            action: util.echo
            params: {message: "done early, skipped=${{ steps.skipped.status }}"}
            end: true
  - id: after_end
    action: util.echo
    params: {message: never}
""", unique)
    steps = summary["steps"]
    assert summary["outcome"] == "succeeded"
    assert steps["skipped"]["status"] == "skipped"
    assert "jumped_over" not in steps and "after_end" not in steps
    assert steps["finish_early"]["output"]["message"] == "done early, skipped=skipped"


async def test_dry_run_reaches_mutating_actions_only(client: Client, worker: Worker, unique: str) -> None:
    summary = await run_to_end(client, """
name: sem-dry-run
version: 1
steps:
  - id: observe
    action: http.check
    params: {url: "http://127.0.0.1:9/health", timeout: 1}
  - id: change
    action: http.request
    params: {url: "http://127.0.0.1:9/restart", method: POST}
""", unique, dry_run=True)
    steps = summary["steps"]
    assert summary["outcome"] == "succeeded" and summary["dry_run"] is True
    assert steps["observe"]["output"]["ok"] is False, "observations really run in dry-run"
    assert steps["change"]["output"] == {"dry_run": True, "would_send": {"method": "POST", "json": None,
                                                                         "url": "http://127.0.0.1:9/restart"}}


async def test_parallel_branch_failure_fails_the_step(client: Client, worker: Worker, unique: str) -> None:
    summary = await run_to_end(client, """
name: sem-parallel
version: 1
steps:
  - id: fan
    parallel:
      - name: good
        steps: [{id: fine, action: util.echo, params: {message: ok}}]
      - name: bad
        steps: [{id: broken, action: util.fail, params: {times: -1}, retry: {max_attempts: 1}}]
    on_failure: continue
  - id: each
    foreach: "[1, 0, 2]"
    steps:
      - id: divide
        check: util.echo
        params: {message: "${{ item }}"}
        assert: result.message > 0
  - id: unreached
    action: util.echo
    params: {message: never}
""", unique)
    steps = summary["steps"]
    assert summary["outcome"] == "failed"
    assert steps["fan"]["error"]["type"] == "ParallelBranchFailed" and steps["fan"]["error"]["branches"] == ["bad"]
    assert steps["fine"]["status"] == "succeeded"
    assert steps["divide[0]"]["status"] == "succeeded" and steps["divide[1]"]["status"] == "failed"
    assert "divide[2]" not in steps and "unreached" not in steps
    assert summary["failure"]["step"] == "each"


APPROVAL_RULES = """
name: sem-approvals
version: 1
steps:
  - id: auto
    approval: {message: "fast path", approvers: [alice], timeout: 300ms, on_timeout: approve}
  - id: by_group
    approval: {message: "needs two SREs", groups: [sre], required: 2}
  - id: expires
    approval: {message: "nobody answers", approvers: [alice], timeout: 300ms}
"""


async def test_approval_timeout_defaults_and_group_quorum(client: Client, worker: Worker, unique: str,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    people = tmp_path / "people.yaml"
    people.write_text("groups:\n  sre: [carol, dave, erin]\n")
    monkeypatch.setenv("INCIDENTCTL_PEOPLE", str(people))  # the worker reads it when the incident starts
    plan = compile_text(APPROVAL_RULES, "approvals.yaml")
    started = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE)
    incident = started.incident_id
    await eventually(lambda: incidents.show_incident(client, incident),
                     lambda s: any(p["step"] == "by_group" for p in s["pending_approvals"]))
    with pytest.raises(incidents.IncidentError, match="'mallory' may not approve step 'by_group'"):
        await incidents.decide(client, incident, ApprovalDecision(approver="mallory", approve=True))
    with pytest.raises(incidents.IncidentError, match="step 'nope' is not waiting for approval"):
        await incidents.decide(client, incident, ApprovalDecision(approver="carol", approve=True, step="nope"))
    first = await incidents.decide(client, incident, ApprovalDecision(approver="carol", approve=True))
    second = await incidents.decide(client, incident, ApprovalDecision(approver="erin", approve=True))
    assert (first.outcome, second.outcome, second.approvals) == ("pending", "approved", 2)
    summary = await incidents.wait_for_runbook(client, incident)
    assert summary["steps"]["auto"]["output"]["approved"] is True
    assert summary["steps"]["by_group"]["status"] == "succeeded"
    assert summary["outcome"] == "failed"
    assert summary["failure"]["message"] == "approval timed out"
    timeline = await incidents.incident_timeline(client, incident)
    timeouts = [e["detail"]["outcome"] for e in timeline if e["kind"] == "approval_timed_out"]
    assert timeouts == ["approved", "rejected"]


async def test_cancel_during_a_durable_sleep(client: Client, worker: Worker, unique: str) -> None:
    plan = compile_text("name: sem-cancel\nversion: 1\nsteps:\n  - {id: nap, sleep: 1h}\n", "c.yaml")
    started = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE)
    await eventually(lambda: incidents.show_incident(client, started.incident_id),
                     lambda s: s["current_steps"] == ["nap"])
    await incidents.cancel_incident(client, started.incident_id)
    state = await eventually(lambda: incidents.show_incident(client, started.incident_id),
                             lambda s: s["workflow_status"] == "CANCELED")
    assert state["status"] == "cancelled"


async def test_outputs_apply_to_every_step_kind(client: Client, worker: Worker, unique: str) -> None:
    summary = await run_to_end(client, """
name: sem-outputs
version: 1
steps:
  - id: fan
    parallel:
      - steps: [{id: inner, action: util.echo, params: {message: hi}}]
    outputs: {said: "${{ steps.inner.output.message }}", branches: "${{ len(result.branches) }}"}
  - id: each
    foreach: "[1, 2, 3]"
    steps: [{id: double, action: util.echo, params: {message: "${{ item * 2 }}"}}]
    outputs: {count: "${{ result.items }}", last: "${{ result.iterations[-1].double.message }}"}
  - id: pause
    sleep: 10ms
    outputs: {waited: "${{ result.slept_s }}"}
  - id: after
    action: util.echo
    params: {message: "${{ steps.fan.output.said }} ${{ steps.each.output.last }} (${{ steps.inner.status }})"}
""", unique)
    steps = summary["steps"]
    assert steps["fan"]["output"] == {"said": "hi", "branches": 1}
    assert steps["each"]["output"] == {"count": 3, "last": 6}
    assert steps["pause"]["output"] == {"waited": 0.01}
    assert steps["after"]["output"]["message"] == "hi 6 (succeeded)"
