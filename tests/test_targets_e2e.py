"""One incident per broken thing, through the real wire: the receiver over HTTP with the shipped runbooks, the
real dev server and worker, the simulated cluster as a process. Two alerts about one deployment make one
incident and one rollback; a change another incident made lately needs a fresh approval that shows it; while
one incident holds an object's lease, another's change to it waits and is refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.client import IncidentError
from incidentctl.intake import delivery
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from incidentctl.k8ssim.process import crash_looping_pod
from incidentctl.library import compile_file
from incidentctl.output import incident_report
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.k8s_sim import SimCluster
from tests.runbook_run import RUNBOOKS, approve, waiting_on
from workflows.model import ApprovalDecision
from workflows.target_state import Claim
from workflows.targets import TargetWorkflow, target_workflow_id

TOKEN = "targets-token"


@pytest.fixture(scope="module")
async def receiver(client: Client, worker: Worker) -> AsyncIterator[RunningReceiver]:
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token=TOKEN), task_queue=TEST_TASK_QUEUE,
                                   runbook_paths=[RUNBOOKS])
    yield running
    await running.stop()


async def post(receiver: RunningReceiver, status: str, labels: dict[str, str]) -> dict[str, Any]:
    body = {"version": "4", "groupKey": "{}:" + json.dumps(labels, sort_keys=True), "truncatedAlerts": 0,
            "status": status, "receiver": "incidentctl", "groupLabels": {}, "commonLabels": labels,
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
            "alerts": [{"status": status, "labels": labels, "annotations": {}, "startsAt": "2026-12-01T08:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z"}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(receiver.url + "/alertmanager", data=json.dumps(body),
                                headers={"Authorization": f"Bearer {TOKEN}",
                                         "Content-Type": "application/json"}) as response:
            answer = await response.json()
            assert response.status == 200, answer
            return answer


def image(cluster: SimCluster, name: str) -> str:
    deployment = cluster.get(f"/apis/apps/v1/namespaces/shop/deployments/{name}")
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


@pytest.mark.scenario("bad-rollout")
async def test_two_alerts_about_one_deployment_make_one_incident_and_one_rollback(
        client: Client, receiver: RunningReceiver, cluster: SimCluster) -> None:
    # `cluster: sim` is the simulator's kubeconfig context: the runbooks act on it, and the target names it.
    crashing = {"alertname": "KubePodCrashLooping", "namespace": "shop", "severity": "warning", "cluster": "sim",
                "pod": crash_looping_pod(cluster.url, "shop", "app=cart"), "container": "cart"}
    mismatch = {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop", "deployment": "cart",
                "severity": "warning", "cluster": "sim"}
    first = (await post(receiver, "firing", crashing))["incidents"][0]
    second = (await post(receiver, "firing", mismatch))["incidents"][0]
    incident = first["incident_id"]
    try:
        assert first["result"] == "started" and first["runbook"] == "k8s-pod-crashlooping"
        assert (second["result"], second["incident_id"]) == ("joined", incident)
        assert second["runbook"] == "k8s-deployment-replicas-mismatch"

        await approve(client, incident, "approve_rollback")
        state = await eventually(lambda: incidents.show_incident(client, incident),
                                 lambda s: s["steps"].get("verify_rollout", {}).get("status") == "succeeded",
                                 timeout=90)
        # The mismatch alert's own runbook never ran: no incident under its key, one rollback in all.
        mismatch_incident = state["joined"][0]["incident_key"]
        assert mismatch_incident.startswith("incident-k8s-deployment-replicas-mismatch-")
        with pytest.raises(RPCError):
            await client.get_workflow_handle(mismatch_incident).describe()
        assert image(cluster, "cart") == "shop/cart:1.4.2"
        assert [j["runbook"] for j in state["joined"]] == ["k8s-deployment-replicas-mismatch"]
        assert state["joined"][0]["alertnames"] == ["KubeDeploymentReplicasMismatch"]
        assert len(state["alerts"]) == 2
        timeline = await incidents.incident_timeline(client, incident)
        assert [e["kind"] for e in timeline].count("alerts_joined") == 1
        assert [(lease["step"], lease["outcome"]) for lease in state["leases"]] == [("rollback", "done")]
        granted = next(e for e in timeline if e["kind"] == "lease_granted")
        assert granted["detail"]["target"].endswith("/shop/deployments/cart")
        assert granted["detail"]["recent_changes"] == 0
        shown = incident_report(state)
        assert "joined     KubeDeploymentReplicasMismatch (runbook k8s-deployment-replicas-mismatch not run" in shown
        assert "/shop/deployments/cart by step rollback (k8s.rollout_undo): done" in shown

        # The joined alert's resolve reaches the incident it joined.
        resolved = (await post(receiver, "resolved", mismatch))["incidents"][0]
        assert (resolved["result"], resolved["incident_id"]) == ("updated", incident)
    finally:
        await incidents.cancel_incident(client, incident)

    # Once the incident is over, the target is free: the next alert about it opens a new incident.
    again = await eventually(lambda: post(receiver, "firing", {**mismatch, "severity": "critical"}),
                             lambda answer: answer["incidents"][0]["result"] == "started", timeout=30)
    await incidents.cancel_incident(client, again["incidents"][0]["incident_id"])



@pytest.mark.scenario("healthy")
async def test_alerts_of_one_burst_join_the_incident_whose_start_is_still_on_its_way(
        client: Client, receiver: RunningReceiver, monkeypatch: pytest.MonkeyPatch, unique: str) -> None:
    """A bad rollout fires several rules at once. The first group claims the deployment and then starts its
    incident; a second group that asks the target in between finds an owner not started yet. It must wait for
    it, not take the target over (which opened two incidents for one deployment under `incidentctl dev`)."""
    deployment = f"burst{unique[-6:].lower()}"
    labels = {"namespace": "shop", "severity": "warning", "cluster": "sim"}
    crashing = {**labels, "alertname": "KubePodCrashLooping", "pod": f"{deployment}-7gdbm5kfkt-2m8dc"}
    mismatch = {**labels, "alertname": "KubeDeploymentReplicasMismatch", "deployment": deployment}
    start_or_update = receiver.intake._start_or_update
    claimed_both = asyncio.Event()
    starts: list[str] = []

    async def start_after_the_other_claimed(route: Any, workflow_id: str, *args: Any) -> Any:
        starts.append(workflow_id)
        if len(starts) == 1:  # the first claimant starts only once the other group has asked the target
            await asyncio.wait_for(claimed_both.wait(), 30)
        return await start_or_update(route, workflow_id, *args)

    claim = receiver.intake.targets.claim
    claims: list[str] = []

    async def counted_claim(target: str, wanted: Any) -> str:
        owner = await claim(target, wanted)
        claims.append(owner)
        if len(claims) >= 2:
            claimed_both.set()
        return owner

    monkeypatch.setattr(receiver.intake, "_start_or_update", start_after_the_other_claimed)
    monkeypatch.setattr(receiver.intake.targets, "claim", counted_claim)
    answers = await asyncio.gather(post(receiver, "firing", crashing), post(receiver, "firing", mismatch))
    outcomes = [answer["incidents"][0] for answer in answers]
    try:
        assert claims[0] == claims[1], "the second claimant was told the first one's incident"
        assert sorted(o["result"] for o in outcomes) == ["joined", "started"], outcomes
        assert outcomes[0]["incident_id"] == outcomes[1]["incident_id"], outcomes
        state = await incidents.show_incident(client, outcomes[0]["incident_id"])
        assert {a["labels"]["alertname"] for a in state["alerts"].values()} == {"KubePodCrashLooping",
                                                                              "KubeDeploymentReplicasMismatch"}
    finally:
        for incident in {o["incident_id"] for o in outcomes}:
            await incidents.cancel_incident(client, incident)



@pytest.mark.scenario("healthy")
async def test_a_claimant_that_never_started_its_incident_is_replaced_after_the_wait(
        client: Client, receiver: RunningReceiver, monkeypatch: pytest.MonkeyPatch, unique: str) -> None:
    """The receiver that claimed the target died before starting its incident: the next alert waits
    OWNER_START_WAIT for it, then takes the target and opens the incident itself."""
    monkeypatch.setattr(delivery, "OWNER_START_WAIT", timedelta(seconds=1))
    deployment = f"orphan{unique[-6:].lower()}"
    mismatch = {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop", "deployment": deployment,
                "severity": "warning", "cluster": "sim"}
    never_started = f"incident-never-started-{unique}"
    target = f"k8s/sim/shop/deployments/{deployment}"
    assert await receiver.intake.targets.claim(target, Claim(incident_id=never_started, runbook="x")) == \
        never_started
    answer = (await post(receiver, "firing", mismatch))["incidents"][0]
    try:
        assert answer["result"] == "started" and answer["incident_id"] != never_started, answer
        held = await client.get_workflow_handle(target_workflow_id(target)).query(TargetWorkflow.describe)
        assert held["owner"] == answer["incident_id"], "the target workflow itself names the new owner"
    finally:
        await incidents.cancel_incident(client, answer["incident_id"])


SCALE = """
name: scale-checkout
version: 1
parameters:
  replicas: {type: integer, required: true}
leases: {wait: 3s, approvers: [alice]}
steps:
  - id: scale
    action: k8s.scale
    params: {namespace: shop, deployment: checkout, replicas: "${{ params.replicas }}"}
changes: {clusters: ["*"], namespaces: [shop]}
"""


@pytest.mark.scenario("healthy")
async def test_a_recent_change_by_another_incident_needs_a_fresh_approval_and_holds_the_lease(
        client: Client, worker: Worker, cluster: SimCluster, tmp_path: Path, unique: str) -> None:
    runbook = tmp_path / "scale.yaml"
    runbook.write_text(SCALE)
    plan = compile_file(runbook)

    async def start(replicas: int, name: str) -> str:
        started = await incidents.start_incident(client, plan, params={"replicas": replicas}, key=f"{unique}-{name}",
                                                 task_queue=TEST_TASK_QUEUE, started_by="test")
        return started.incident_id

    def replicas() -> int:
        return cluster.get("/apis/apps/v1/namespaces/shop/deployments/checkout")["spec"]["replicas"]

    first = await start(4, "first")
    done = await incidents.wait_for_runbook(client, first)
    assert done["outcome"] == "succeeded" and replicas() == 4

    second = await start(6, "second")
    asked = await eventually(lambda: incidents.show_incident(client, second), waiting_on("scale.confirm"), timeout=30)
    confirm = next(p for p in asked["pending_approvals"] if p["step"] == "scale.confirm")
    assert f"by incident {first} (step scale)" in confirm["message"]
    earlier, _, now = confirm["message"].partition("would now run")
    assert "/shop/deployments/checkout was changed lately by another incident: k8s.scale" in earlier
    assert "'replicas': 4" in earlier and "approved by no one: done" in earlier
    assert now.startswith(" k8s.scale") and "'replicas': 6" in now
    assert confirm["approvers"] == ["alice"]
    assert replicas() == 4, "nothing changes before the fresh approval"

    # While the second incident holds the lease (waiting for its approval), a third one's change is refused.
    third = await start(2, "third")
    refused = await incidents.wait_for_runbook(client, third)
    assert refused["outcome"] == "failed"
    assert refused["failure"]["type"] == "LeaseBusy"
    assert f"by incident {second} (step scale, k8s.scale" in refused["failure"]["message"]
    assert replicas() == 4

    with pytest.raises(IncidentError, match="'bob' may not approve step 'scale.confirm'"):
        await incidents.decide(client, second, ApprovalDecision(approver="bob", approve=True, step="scale.confirm"))
    await incidents.decide(client, second, ApprovalDecision(approver="alice", approve=True, step="scale.confirm"))
    finished = await incidents.wait_for_runbook(client, second)
    assert finished["outcome"] == "succeeded" and replicas() == 6
    for incident in (first, second, third):
        await incidents.cancel_incident(client, incident)
