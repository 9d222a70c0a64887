"""People in the loop: escalation, self-approval, pending approvals, approvals over HTTP (real server)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.library import compile_text
from incidentctl.people import PeopleConfigError, load_groups
from tests.conftest import TEST_TASK_QUEUE, eventually
from workflows.model import Acknowledgement, ApprovalDecision, Assignment, SeverityChange

GROUPS = {"sre": ["alice", "bob"], "sre-leads": ["dana"]}

ESCALATING = """
name: ap-escalation
version: 1
steps:
  - id: gate
    approval:
      message: "roll back?"
      approvers: [alice]
      timeout: 2s
      escalation:
        - {groups: [sre-leads], timeout: 2s}
"""

SELF = """
name: ap-self
version: 1
steps:
  - id: strict
    approval: {message: "strict", groups: [sre]}
  - id: relaxed
    approval: {message: "relaxed", groups: [sre], allow_self_approval: true}
"""


async def start(client: Client, text: str, key: str, **kwargs: Any) -> str:
    started = await incidents.start_incident(client, compile_text(text, "ap.yaml"), key=key,
                                             task_queue=TEST_TASK_QUEUE, groups=GROUPS, **kwargs)
    return started.incident_id


def waiting(step: str, stage: int = 0):
    return lambda s: any(p["step"] == step and p["stage"] == stage for p in s["pending_approvals"])


async def test_escalation_lets_the_next_group_decide_then_times_out(client: Client, worker: Worker,
                                                                    unique: str) -> None:
    incident = await start(client, ESCALATING, f"a{unique}")
    await eventually(lambda: incidents.show_incident(client, incident), waiting("gate", 0))
    with pytest.raises(incidents.IncidentError, match="'dana' may not approve step 'gate'"):
        await incidents.decide(client, incident, ApprovalDecision(approver="dana", approve=True))
    state = await eventually(lambda: incidents.show_incident(client, incident), waiting("gate", 1))
    assert state["pending_approvals"][0]["groups"] == ["sre-leads"]
    receipt = await incidents.decide(client, incident, ApprovalDecision(approver="dana", approve=True))
    assert receipt.outcome == "approved"
    assert (await incidents.wait_for_runbook(client, incident))["outcome"] == "succeeded"

    silent = await start(client, ESCALATING, f"b{unique}")
    summary = await incidents.wait_for_runbook(client, silent)
    assert summary["outcome"] == "failed" and summary["failure"]["message"] == "approval timed out"
    kinds = [e["kind"] for e in await incidents.incident_timeline(client, silent)]
    assert kinds.index("approval_escalated") < kinds.index("approval_timed_out")


async def test_the_incident_starter_may_not_approve_unless_allowed(client: Client, worker: Worker,
                                                                  unique: str) -> None:
    incident = await start(client, SELF, unique, started_by="alice")
    await eventually(lambda: incidents.show_incident(client, incident), waiting("strict"))
    with pytest.raises(incidents.IncidentError, match="'alice' started this incident and may not approve"):
        await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True))
    await incidents.decide(client, incident, ApprovalDecision(approver="bob", approve=True))
    await eventually(lambda: incidents.show_incident(client, incident), waiting("relaxed"))
    receipt = await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True))
    assert receipt.outcome == "approved"
    assert (await incidents.wait_for_runbook(client, incident))["outcome"] == "succeeded"


async def test_pending_lists_every_waiting_approval_oldest_first(client: Client, worker: Worker,
                                                                 unique: str) -> None:
    timed = ("name: ap-pending\nversion: 1\nsteps:\n"
             "  - {id: gate, approval: {message: 'with deadline', approvers: [alice], timeout: 1h}}\n")
    first = await start(client, timed, f"1{unique}")
    await eventually(lambda: incidents.show_incident(client, first), waiting("gate"))
    second = await start(client, SELF, f"2{unique}")
    await eventually(lambda: incidents.show_incident(client, second), waiting("strict"))

    rows = await eventually(lambda: incidents.pending_approvals(client),
                            lambda rows: {first, second} <= {r["incident_id"] for r in rows})
    mine = [r for r in rows if r["incident_id"] in (first, second)]
    assert [r["incident_id"] for r in mine] == [first, second]
    assert 3500 < mine[0]["time_left_s"] <= 3600 and mine[1]["time_left_s"] is None
    assert [r["requested_at"] for r in rows] == sorted(r["requested_at"] for r in rows)

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "incidentctl.cli", "incident", "pending", "--address",
        client.service_client.config.target_host, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert first in out.decode() and "with deadline" in out.decode() and "no deadline" in out.decode()
    for incident in (first, second):
        await incidents.cancel_incident(client, incident)


def test_people_file_is_validated(tmp_path: Path) -> None:
    good = tmp_path / "people.yaml"
    good.write_text("groups:\n  sre: [alice, bob]\n")
    assert load_groups(good) == {"sre": ["alice", "bob"]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  sre: alice\n")
    with pytest.raises(PeopleConfigError, match="must have `groups:` mapping group names to lists of users"):
        load_groups(bad)
    with pytest.raises(PeopleConfigError, match="cannot read people file"):
        load_groups(tmp_path / "missing.yaml")


async def test_roles_assignment_and_time_to_acknowledge(client: Client, worker: Worker, unique: str) -> None:
    text = ("name: ap-roles\nversion: 1\nowner: alice\nteam: platform\nsteps:\n"
            "  - {id: gate, approval: {message: hold, approvers: [alice]}}\n")
    incident = await start(client, text, unique, alert={"labels": {"alertname": "X", "team": "payments"}})
    state = await eventually(lambda: incidents.show_incident(client, incident), waiting("gate"))
    assert (state["roles"]["commander"], state["roles"]["assignee"]) == ("alice", "payments")
    assert state["roles"]["acknowledged_by"] is None

    roles = await incidents.assign_incident(client, incident, Assignment(by="alice", commander="dana"))
    assert (roles["commander"], roles["assignee"]) == ("dana", "payments")
    with pytest.raises(incidents.IncidentError, match="give a commander, an assignee, or both"):
        await incidents.assign_incident(client, incident, Assignment(by="alice"))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "incidentctl.cli", "incident", "ack", incident, "--as", "bob", "-o", "json",
        "--address", client.service_client.config.target_host,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    acked = json.loads(out)
    assert acked["acknowledged_by"] == "bob" and acked["time_to_ack_s"] > 0
    with pytest.raises(incidents.IncidentError, match="acknowledgement refused: already acknowledged by bob"):
        await incidents.acknowledge_incident(client, incident, Acknowledgement(by="carol"))
    timeline = await incidents.incident_timeline(client, incident)
    assert [e["kind"] for e in timeline if e["kind"] in ("assigned", "acknowledged")] == ["assigned", "acknowledged"]
    await incidents.cancel_incident(client, incident)


async def test_vote_while_the_workflow_is_busy_with_another_step(client: Client, worker: Worker,
                                                                 unique: str) -> None:
    text = """
name: ap-busy
version: 1
steps:
  - id: both
    parallel:
      - name: work
        steps: [{id: long_check, action: util.sleep, params: {seconds: 6}, timeout: 30s}]
      - name: ask
        steps: [{id: gate, approval: {message: "go?", approvers: [alice]}}]
"""
    incident = await start(client, text, unique)
    state = await eventually(lambda: incidents.show_incident(client, incident), waiting("gate"))
    assert "long_check" in state["current_steps"], "the activity is still running while we vote"
    receipt = await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True))
    assert receipt.outcome == "approved"
    summary = await incidents.wait_for_runbook(client, incident)
    assert summary["outcome"] == "succeeded"
    assert summary["steps"]["gate"]["finished_at"] < summary["steps"]["long_check"]["finished_at"]


async def test_malformed_approval_payloads_are_refused_not_crashing(client: Client, worker: Worker,
                                                                    unique: str) -> None:
    from temporalio.client import WorkflowUpdateFailedError

    text = "name: ap-malformed\nversion: 1\nsteps:\n  - {id: gate, approval: {message: go, approvers: [alice]}}\n"
    incident = await start(client, text, unique)
    await eventually(lambda: incidents.show_incident(client, incident), waiting("gate"))
    handle = client.get_workflow_handle(incident)
    for payload in ({"approver": 5, "approve": True}, {"approver": "alice"}, "yes please", {"approver": " "}):
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("decide_approval", payload)
    state = await incidents.show_incident(client, incident)
    assert state["status"] == "waiting_approval" and state["pending_approvals"][0]["votes"] == []
    receipt = await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True))
    assert receipt.outcome == "approved"
    assert (await incidents.wait_for_runbook(client, incident))["outcome"] == "succeeded"


SCALE_BY_SEVERITY = """
name: ap-exact
version: 1
severity: SEV3
parameters:
  replicas_by_severity: {type: object, default: {SEV1: 6, SEV3: 4}}
steps:
  - id: gate
    approval: {message: "scale shop/cart to ${{ params.replicas_by_severity[incident.severity] }}?", groups: [sre]}
  - id: scale
    action: k8s.scale
    params: {namespace: shop, deployment: cart, replicas: "${{ params.replicas_by_severity[incident.severity] }}"}
changes: {clusters: ["*"], namespaces: [shop]}
"""


@pytest.mark.scenario("bad-rollout")
async def test_the_approved_params_run_even_when_the_incident_changed_meanwhile(
        client: Client, worker: Worker, unique: str, cluster: Any) -> None:
    """Approved "scale to 4"; the severity goes up (which would now mean 6) before the vote: 4 runs, and the
    timeline says what a fresh render would have given."""
    incident = await start(client, SCALE_BY_SEVERITY, unique)
    state = await eventually(lambda: incidents.show_incident(client, incident), waiting("gate"))
    (pending,) = state["pending_approvals"]
    assert pending["will_run"] == {"step": "scale", "action": "k8s.scale",
                                   "params": {"namespace": "shop", "deployment": "cart", "replicas": 4}}
    await incidents.change_severity(client, incident, SeverityChange(by="bob", severity="SEV1", reason="worse"))
    await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True))
    summary = await incidents.wait_for_runbook(client, incident)
    timeline = await incidents.incident_timeline(client, incident)
    deployment = cluster.get("/apis/apps/v1/namespaces/shop/deployments/cart")

    assert summary["outcome"] == "succeeded" and summary["severity"] == "SEV1"
    assert summary["steps"]["scale"]["output"]["after"]["replicas"] == 4
    assert deployment["spec"]["replicas"] == 4
    (kept,) = [e for e in timeline if e["kind"] == "approved_params_kept"]
    assert kept["step"] == "scale" and kept["detail"]["approval"] == "gate"
    assert kept["detail"]["changes"] == {"replicas": {"approved": 4, "now": 6}}


TEMPLATED = """
name: ap-templated
version: 1
parameters:
  approvers: {type: array, default: [carol, dana]}
  team: {type: string, default: sre}
steps:
  - id: gate
    approval: {message: "go?", approvers: ["${{ params.approvers }}"], groups: ["${{ params.team }}"]}
"""


async def test_templated_approvers_are_rendered_and_unknown_groups_refused(client: Client, worker: Worker,
                                                                           unique: str) -> None:
    incident = await start(client, TEMPLATED, unique)
    state = await eventually(lambda: incidents.show_incident(client, incident), waiting("gate"))
    pending = state["pending_approvals"][0]
    assert (pending["approvers"], pending["groups"]) == (["carol", "dana"], ["sre"])
    with pytest.raises(incidents.IncidentError, match="may not approve"):
        await incidents.decide(client, incident, ApprovalDecision(approver="${{ params.approvers }}", approve=True))
    receipt = await incidents.decide(client, incident, ApprovalDecision(approver="dana", approve=True))
    assert receipt.outcome == "approved"
    await incidents.cancel_incident(client, incident)

    unknown = await start(client, TEMPLATED, f"{unique}-2", params={"team": "nobody-team"})
    summary = await incidents.wait_for_runbook(client, unknown)
    assert summary["failure"]["type"] == "InvalidApprovers"
    assert "group(s) nobody-team that the people file does not have" in summary["failure"]["message"]
    await incidents.cancel_incident(client, unknown)


async def test_pending_names_waiting_incidents_that_cannot_be_asked(client: Client, unique: str) -> None:
    from incidentctl.workers import build_worker

    task_queue = f"pending-{unique}"
    async with build_worker(client, task_queue):
        started = await incidents.start_incident(client, compile_text(SELF, "ap.yaml"), key=unique,
                                                 task_queue=task_queue, groups=GROUPS, started_by="carol")
        await eventually(lambda: incidents.show_incident(client, started.incident_id), waiting("strict"))
        await eventually(lambda: incidents.list_incidents(client, status="waiting_approval"),
                         lambda rows: started.incident_id in {r["incident_id"] for r in rows})
    unanswered: list[str] = []
    rows = await incidents.pending_approvals(client, unanswered=unanswered)
    assert started.incident_id in unanswered and started.incident_id not in {r["incident_id"] for r in rows}
    await incidents.cancel_incident(client, started.incident_id)


async def test_groups_come_from_the_workers_people_file_not_from_the_starter(
        client: Client, worker: Worker, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    people = tmp_path / "people.yaml"
    people.write_text("groups:\n  sre: [alice, bob]\n  sre-leads: [dana]\n")
    monkeypatch.setenv("INCIDENTCTL_PEOPLE", str(people))  # what the (in-process) worker reads
    leads_only = "name: ap-leads\nversion: 1\nsteps:\n  - {id: gate, approval: {message: go?, groups: [sre-leads]}}\n"
    # A starter who pins their own list: `outsider` in sre-leads.
    started = await incidents.start_incident(client, compile_text(leads_only, "ap.yaml"), key=unique,
                                             task_queue=TEST_TASK_QUEUE, groups={"sre-leads": ["outsider"]})
    incident = started.incident_id
    await eventually(lambda: incidents.show_incident(client, incident), waiting("gate"))
    with pytest.raises(incidents.IncidentError, match="'outsider' may not approve"):
        await incidents.decide(client, incident, ApprovalDecision(approver="outsider", approve=True))
    assert (await incidents.decide(client, incident, ApprovalDecision(approver="dana", approve=True))).outcome \
        == "approved"
    kinds = {e["kind"]: e for e in await incidents.incident_timeline(client, incident)}
    assert kinds["people_loaded"]["detail"]["groups"] == {"sre": 2, "sre-leads": 1}
    await incidents.cancel_incident(client, incident)
