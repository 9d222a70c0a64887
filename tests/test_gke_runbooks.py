"""The shipped GKE runbook end to end: real Temporal dev server, in-process worker, the fake GKE API as a local
process (the worker's gke actions reach it through INCIDENTCTL_GKE_ENDPOINT), an approval from config/people.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.intake.routing import Router
from incidentctl.library import compile_file, compile_text
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.gke_fake import FakeGke, start_gke
from tests.runbook_run import RUNBOOKS, alert, approve, finished, start, waiting_on
from workflows.model import ApprovalDecision

RUNBOOK = "gke-node-pool-exhausted"
# What the alert rule of docs/gke.md sends: the pool, where it is, and its node count from kube-state-metrics.
EXHAUSTED = {"alertname": "GKENodePoolExhausted", "project": "acme-prod", "location": "europe-west1",
             "cluster": "shop", "node_pool": "web", "nodes": "3", "severity": "critical"}


@pytest.fixture
def gke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGke]:
    with start_gke(tmp_path, monkeypatch) as fake:
        yield fake


def test_the_alert_routes_to_the_runbook_with_its_parameters() -> None:
    from incidentctl.params import resolve_params

    router = Router([compile_file(RUNBOOKS / f"{RUNBOOK}.yaml")])
    route = router.route(EXHAUSTED)
    assert route is not None and route.runbook == RUNBOOK
    resolved = resolve_params(route.plan, {}, {"labels": EXHAUSTED, "annotations": {}})
    assert (resolved["node_pool"], resolved["nodes"], resolved["max_nodes"]) == ("web", 3, 12)
    assert router.severity(route, EXHAUSTED) == "SEV2"


async def test_a_pool_at_its_limit_is_grown_within_the_bound_with_approval(
        client: Client, worker: Worker, unique: str, gke: FakeGke) -> None:
    incident = await start(client, RUNBOOK, unique, EXHAUSTED)
    asked = await approve(client, incident, "approve_resize")
    summary = await finished(client, incident)

    assert "is at its limit: 3 nodes in 1 zone(s), autoscaling maximum 3 per zone" in asked["message"]
    assert "Resize it to 4 per zone (4 nodes, bound 12)" in asked["message"]
    # The first change the approval lets run: the autoscaling maximum, raised to the target before the resize.
    assert asked["will_run"]["action"] == "gke.set_node_pool_autoscaling"
    assert asked["will_run"]["params"]["max_node_count"] == 4 and asked["will_run"]["params"]["max_nodes"] == 12
    assert summary["outcome"] == "succeeded", summary.get("failure")
    steps = summary["steps"]
    assert steps["resize"]["output"]["operation"]["status"] == "DONE"
    assert steps["resize"]["output"]["total_nodes"] == 4 and steps["resize"]["output"]["waited_for"] == []
    assert steps["raise_autoscaling"]["output"]["autoscaling"] == {"enabled": True, "min_node_count": 1,
                                                                   "max_node_count": 4}
    assert steps["verify"]["status"] == "succeeded"
    assert gke.pool("web") == {"node_count": 4, "version": "1.30.5-gke.1014001", "status": "RUNNING",
                               "autoscaling": {"enabled": True, "minNodeCount": 1, "maxNodeCount": 4}}
    assert gke.calls(":setSize") == 1 and gke.calls(":setAutoscaling") == 1


async def test_a_pool_below_its_limit_is_handed_to_people_without_a_change(
        client: Client, worker: Worker, unique: str, gke: FakeGke) -> None:
    incident = await start(client, RUNBOOK, unique, {**EXHAUSTED, "nodes": "2"})
    summary = await finished(client, incident)
    assert "approve_resize" not in summary["steps"] and "resize" not in summary["steps"]
    assert summary["steps"]["not_at_limit"]["status"] == "succeeded"
    state = await incidents.show_incident(client, incident)
    assert state["status"] == "needs_attention"
    assert gke.calls(":setSize") == 0 and gke.pool("web")["node_count"] == 3


async def test_a_rejected_resize_changes_nothing(client: Client, worker: Worker, unique: str, gke: FakeGke) -> None:
    incident = await start(client, RUNBOOK, unique, EXHAUSTED)
    await eventually(lambda: incidents.show_incident(client, incident), waiting_on("approve_resize"), timeout=60)
    await incidents.decide(client, incident, ApprovalDecision(approver="bob", approve=False, step="approve_resize",
                                                              comment="quota is exhausted anyway"))
    summary = await finished(client, incident)
    assert summary["outcome"] == "failed" and "resize" not in summary["steps"]
    assert gke.calls(":setSize") == 0 and gke.pool("web")["node_count"] == 3


async def test_an_alert_naming_a_pool_outside_changes_gke_is_refused_by_the_workflow(
        client: Client, worker: Worker, unique: str, gke: FakeGke) -> None:
    """The runbook narrowed to pool `batch`; the alert names `web`. A person approving does not widen it: the
    workflow refuses its first change before scheduling it, and GKE is never asked."""
    shipped = (RUNBOOKS / f"{RUNBOOK}.yaml").read_text()
    narrowed = shipped.replace('    node_pools: ["*"]\n', "    node_pools: [batch]\n")
    assert narrowed != shipped
    plan = compile_text(narrowed, f"{RUNBOOK}.yaml")
    started = await incidents.start_incident(client, plan, alert=alert(**EXHAUSTED), key=unique,
                                             task_queue=TEST_TASK_QUEUE, started_by="alertmanager")
    await approve(client, started.incident_id, "approve_resize")
    summary = await finished(client, started.incident_id)
    refused = summary["steps"]["raise_autoscaling"]
    assert refused["status"] == "failed" and refused["error"]["type"] == "ChangeNotAllowed"
    assert "web matches none of the runbook's changes.gke.node_pools (batch)" in refused["error"]["message"]
    assert "resize" not in summary["steps"] and summary["steps"]["escalate"]["status"] == "succeeded"
    history = await client.get_workflow_handle(started.incident_id).fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
                 if e.HasField("activity_task_scheduled_event_attributes")]
    assert "gke.node_pool_status" in scheduled
    assert "gke.set_node_pool_autoscaling" not in scheduled and "gke.resize_node_pool" not in scheduled
    assert gke.calls(":setSize") == 0 and gke.calls(":setAutoscaling") == 0 and gke.pool("web")["node_count"] == 3
