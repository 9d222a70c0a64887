"""The shipped Kubernetes runbooks end to end: real Temporal dev server, in-process worker, simulated cluster.

Each test seeds the simulator with the incident its runbook is for, starts the incident from a kube-prometheus
shaped alert, approves as a person from config/people.yaml, and reads the cluster back afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.intake.routing import Router
from incidentctl.k8ssim.process import crash_looping_pod
from incidentctl.library import compile_file
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.k8s_sim import SimCluster
from tests.runbook_run import RUNBOOKS, alert, approve, finished, start, waiting_on
from workflows.model import ApprovalDecision

# What real rule sets send: kube-prometheus (severity warning, CPUThrottlingHigh info), the KubeContainerOOMKilled
# rule of deploy/prometheus/, and falcosidekick (alertname = the Falco rule, priority, k8s_ns_name, k8s_pod_name).
REAL_ALERTS = {
    "k8s-pod-crashlooping": {"alertname": "KubePodCrashLooping", "namespace": "shop", "pod": "cart-1",
                             "container": "cart", "severity": "warning"},
    "k8s-deployment-replicas-mismatch": {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop",
                                         "deployment": "payments", "severity": "warning"},
    "k8s-node-not-ready": {"alertname": "KubeNodeNotReady", "node": "node-3", "severity": "warning"},
    "k8s-oom-killed": {"alertname": "KubeContainerOOMKilled", "namespace": "shop", "pod": "search-1",
                       "container": "search", "severity": "warning"},
    "k8s-security-containment": {"alertname": "Terminal shell in container", "rule": "Terminal shell in container",
                                 "source": "falco", "priority": "Critical", "severity": "critical",
                                 "k8s_ns_name": "shop", "k8s_pod_name": "checkout-1", "container_name": "checkout"},
    "k8s-deployment-rollout-stuck": {"alertname": "KubeDeploymentRolloutStuck", "namespace": "shop",
                                     "deployment": "reviews", "severity": "warning"},
    "k8s-container-waiting": {"alertname": "KubeContainerWaiting", "namespace": "shop", "pod": "orders-1",
                              "container": "orders", "reason": "CreateContainerConfigError", "severity": "warning"},
    "k8s-pod-not-ready": {"alertname": "KubePodNotReady", "namespace": "shop", "pod": "ledger-1",
                          "severity": "warning"},
    "k8s-cpu-throttling": {"alertname": "CPUThrottlingHigh", "namespace": "shop", "pod": "recommend-1",
                           "container": "recommend", "severity": "info"},
}


def test_real_alerts_route_to_the_shipped_runbooks_with_their_parameters_and_severity() -> None:
    from incidentctl.params import resolve_params

    router = Router([compile_file(path) for path in sorted(RUNBOOKS.glob("k8s-*.yaml"))])
    severities = {}
    for runbook, labels in REAL_ALERTS.items():
        route = router.route(labels)
        assert route is not None and route.runbook == runbook, labels["alertname"]
        # Every required parameter comes from the alert alone, as when the receiver starts the incident.
        resolve_params(route.plan, {}, {"labels": labels, "annotations": {}})
        severities[runbook] = router.severity(route, labels)
    # kube-prometheus says "warning" for all of these; the runbooks tell them apart.
    assert severities == {
        "k8s-pod-crashlooping": "SEV2", "k8s-deployment-replicas-mismatch": "SEV3", "k8s-node-not-ready": "SEV2",
        "k8s-oom-killed": "SEV3", "k8s-security-containment": "SEV1", "k8s-deployment-rollout-stuck": "SEV3",
        "k8s-container-waiting": "SEV3", "k8s-pod-not-ready": "SEV3", "k8s-cpu-throttling": "SEV4"}
    assert router.severity(router.route(REAL_ALERTS["k8s-node-not-ready"]), {"severity": "critical"}) == "SEV1"


def test_only_falco_priorities_worth_containing_start_a_containment() -> None:
    router = Router([compile_file(RUNBOOKS / "k8s-security-containment.yaml")])
    falco = REAL_ALERTS["k8s-security-containment"]
    for priority in ("Emergency", "Alert", "Critical"):
        assert router.route({**falco, "priority": priority}) is not None, priority
    for priority in ("Error", "Warning", "Notice", "Informational", "Debug"):
        assert router.route({**falco, "priority": priority}) is None, priority
    assert router.route({**falco, "alertname": "FalcoEvent"}) is not None, "an operator-set alertname"
    assert router.route({**falco, "source": "k8s_audit"}) is None
    assert router.route({k: v for k, v in falco.items() if k != "k8s_pod_name"}) is None, "not about a pod"


@pytest.mark.scenario("bad-rollout")
async def test_crash_loop_after_a_deploy_is_rolled_back_with_approval(
        client: Client, worker: Worker, unique: str, cluster: SimCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INCIDENTCTL_PROMETHEUS_URL", raising=False)  # this worker has no Prometheus
    pod = crash_looping_pod(cluster.url, "shop", "app=cart")
    incident = await start(client, "k8s-pod-crashlooping", unique, {"alertname": "KubePodCrashLooping",
                                                                   "namespace": "shop", "pod": pod},
                           stable_for="2s")
    asked = await approve(client, incident, "approve_rollback")
    summary = await finished(client, incident)
    deployment = cluster.get("/apis/apps/v1/namespaces/shop/deployments/cart")

    # The approver saw the diagnosis: the revisions, the image diff and the crash log.
    assert "from revision 2 to 1" in asked["message"]
    # ... and exactly what runs once approved: the undo from revision 2 to revision 1, nothing else.
    assert asked["will_run"] == {"step": "rollback", "action": "k8s.rollout_undo",
                                 "params": {"namespace": "shop", "deployment": "cart", "context": None,
                                            "to_revision": 1, "expect_revision": 2}}
    assert "shop/cart:1.4.2 -> shop/cart:1.4.3" in asked["message"]
    assert "panic: assignment to entry in nil map" in asked["message"]
    steps = summary["steps"]
    assert summary["outcome"] == "succeeded"
    assert steps["owner"]["output"]["name"] == "cart"
    assert steps["changes"]["output"]["recent_rollout"] is True
    assert steps["rollback"]["output"]["before"]["images"] == {"cart": "shop/cart:1.4.3"}
    assert steps["rollback"]["output"]["after"]["images"] == {"cart": "shop/cart:1.4.2"}
    assert steps["rollback"]["output"]["to_revision"] == 1
    assert steps["approve_rollback"]["output"]["will_run"] == asked["will_run"]
    timeline = await incidents.incident_timeline(client, incident)
    requested = next(e for e in timeline if e["kind"] == "approval_requested")
    assert requested["detail"]["will_run"] == asked["will_run"]
    assert not [e for e in timeline if e["kind"] == "approved_params_kept"], "nothing moved: nothing to report"
    assert steps["verify_stable"]["output"]["ok"] is True
    # No Prometheus for this worker: the metric verification is skipped (tests/test_prometheus_runbooks.py runs it).
    assert steps["prometheus"]["output"]["configured"] is False
    assert steps["verify_restarts_metric"]["status"] == "skipped"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/cart:1.4.2"
    assert deployment["status"]["availableReplicas"] == 3


@pytest.mark.scenario("bad-rollout")
async def test_rejected_rollback_changes_nothing(client: Client, worker: Worker, unique: str,
                                                 cluster: SimCluster) -> None:
    pod = crash_looping_pod(cluster.url, "shop", "app=cart")
    incident = await start(client, "k8s-pod-crashlooping", unique, {"alertname": "KubePodCrashLooping",
                                                                   "namespace": "shop", "pod": pod})
    await eventually(lambda: incidents.show_incident(client, incident), waiting_on("approve_rollback"), timeout=60)
    await incidents.decide(client, incident, ApprovalDecision(approver="bob", approve=False, step="approve_rollback",
                                                              comment="the fix-forward is on its way"))
    summary = await finished(client, incident)
    assert summary["outcome"] == "failed"
    assert summary["failure"]["message"] == "rejected by bob: the fix-forward is on its way"
    assert "rollback" not in summary["steps"]
    deployment = cluster.get("/apis/apps/v1/namespaces/shop/deployments/cart")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/cart:1.4.3"


@pytest.mark.scenario("bad-rollout")
async def test_a_deployment_that_moved_after_the_approval_is_not_rolled_back(
        client: Client, worker: Worker, unique: str, cluster: SimCluster) -> None:
    """Approved "from revision 2 to 1"; before the undo runs someone else rolls out revision 3. A plain rollout
    undo would now go to revision 2 (the bad image again); the approved one refuses and pages a human."""
    from kubernetes import client as k8s

    pod = crash_looping_pod(cluster.url, "shop", "app=cart")
    incident = await start(client, "k8s-pod-crashlooping", unique, {"alertname": "KubePodCrashLooping",
                                                                   "namespace": "shop", "pod": pod},
                           stable_for="2s")
    state = await eventually(lambda: incidents.show_incident(client, incident), waiting_on("approve_rollback"),
                             timeout=60)
    (pending,) = state["pending_approvals"]
    assert pending["will_run"]["params"]["to_revision"] == 1 and pending["will_run"]["params"]["expect_revision"] == 2
    k8s.AppsV1Api(cluster.api()).patch_namespaced_deployment("cart", "shop", {"spec": {"template": {"spec": {
        "containers": [{"name": "cart", "image": "shop/cart:1.4.4"}]}}}})
    moved = cluster.get("/apis/apps/v1/namespaces/shop/deployments/cart")
    assert moved["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True, step="approve_rollback"))
    summary = await finished(client, incident)
    deployment = cluster.get("/apis/apps/v1/namespaces/shop/deployments/cart")

    rollback = summary["steps"]["rollback"]
    assert rollback["status"] == "failed" and rollback["error"]["type"] == "RevisionChanged"
    assert ("deployment shop/cart changed since the approval: current revision 3, approved going from 2 to 1"
            in rollback["error"]["message"])
    assert summary["steps"]["escalate"]["status"] == "succeeded"
    assert "verify_rollout" not in summary["steps"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/cart:1.4.4"
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


@pytest.mark.scenario("replicas-mismatch")
async def test_replicas_mismatch_from_a_bad_image_is_rolled_back(client: Client, worker: Worker, unique: str,
                                                                 cluster: SimCluster) -> None:
    incident = await start(client, "k8s-deployment-replicas-mismatch", unique,
                           {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop",
                            "deployment": "payments"})
    asked = await approve(client, incident, "approve_rollback")
    summary = await finished(client, incident)
    deployment = cluster.get("/apis/apps/v1/namespaces/shop/deployments/payments")
    assert "ImagePullBackOff" in asked["message"] or "ErrImagePull" in asked["message"]
    assert summary["outcome"] == "succeeded"
    assert summary["steps"]["status"]["output"]["mismatch"]["missing"] == 1
    assert deployment["status"]["availableReplicas"] == 4
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/payments:5.0.1"


@pytest.mark.scenario("node-not-ready")
async def test_node_not_ready_is_cordoned_and_drained(client: Client, worker: Worker, unique: str,
                                                      cluster: SimCluster) -> None:
    incident = await start(client, "k8s-node-not-ready", unique, {"alertname": "KubeNodeNotReady",
                                                                 "node": "node-3"}, namespaces=["shop"])
    asked = await approve(client, incident, "approve_drain")
    summary = await finished(client, incident)
    node = cluster.get("/api/v1/nodes/node-3")
    on_node = cluster.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-3")["items"]
    inventory = cluster.get("/apis/apps/v1/namespaces/shop/deployments/inventory")
    assert "NotReady" in asked["message"]
    assert summary["outcome"] == "succeeded"
    assert summary["steps"]["drain"]["output"]["evicted"]
    assert node["spec"]["unschedulable"] is True
    assert on_node == []
    assert inventory["status"]["availableReplicas"] == 3


@pytest.mark.scenario("oom")
async def test_oom_killed_container_gets_a_bounded_memory_raise(client: Client, worker: Worker, unique: str,
                                                                cluster: SimCluster) -> None:
    pod = crash_looping_pod(cluster.url, "shop", "app=search")
    incident = await start(client, "k8s-oom-killed", unique, {"alertname": "KubeContainerOOMKilled",
                                                             "namespace": "shop", "pod": pod, "container": "search"},
                           stable_for="2s", max_memory="512Mi")
    asked = await approve(client, incident, "approve_raise")
    summary = await finished(client, incident)
    deployment = cluster.get("/apis/apps/v1/namespaces/shop/deployments/search")
    assert "OOMKilled" in asked["message"] and "512Mi" in asked["message"]
    assert summary["outcome"] == "succeeded"
    assert summary["steps"]["raise_limit"]["output"]["before"]["resources"]["search"]["limits"]["memory"] == "256Mi"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "384Mi"


@pytest.mark.scenario("healthy")
async def test_security_containment_isolates_then_lifts(client: Client, worker: Worker, unique: str,
                                                        cluster: SimCluster) -> None:
    pod = cluster.get("/api/v1/namespaces/shop/pods?labelSelector=app%3Dcheckout")["items"][0]["metadata"]["name"]
    incident = await start(client, "k8s-security-containment", unique,
                           {**REAL_ALERTS["k8s-security-containment"], "k8s_pod_name": pod})
    asked = await approve(client, incident, "approve_isolation")
    assert "Falco (Critical): Terminal shell in container in pod shop/" in asked["message"]
    await eventually(lambda: incidents.show_incident(client, incident), waiting_on("approve_lift"), timeout=60)
    policies = cluster.get("/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies")["items"]
    assert [p["metadata"]["name"] for p in policies] == ["incidentctl-isolate-checkout"]
    assert policies[0]["spec"]["podSelector"] == {"matchLabels": {"app": "checkout"}}
    assert policies[0]["spec"]["policyTypes"] == ["Ingress"]
    await approve(client, incident, "approve_lift", who="dana")
    summary = await finished(client, incident)
    assert summary["outcome"] == "succeeded"
    assert cluster.get("/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies")["items"] == []


async def test_one_runbook_reaches_two_clusters_by_context(client: Client, worker: Worker, unique: str,
                                                           k8s_sim: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from incidentctl.k8ssim.kubeconfig import kubeconfig
    from incidentctl.library import compile_text

    with k8s_sim("bad-rollout") as east, k8s_sim("healthy") as west:
        merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": "east",
                                  "clusters": [], "users": [], "contexts": []}
        for name, sim in (("east", east), ("west", west)):
            one = kubeconfig(sim.url)
            merged["clusters"].append({"name": name, "cluster": one["clusters"][0]["cluster"]})
            merged["users"].append({"name": name, "user": one["users"][0]["user"]})
            merged["contexts"].append({"name": name, "context": {"cluster": name, "user": name}})
        path = tmp_path / "two-clusters.yaml"
        path.write_text(yaml.safe_dump(merged))
        monkeypatch.setenv("INCIDENTCTL_KUBECONFIG", str(path))
        plan = compile_text("""
name: two-clusters
version: 1
steps:
  - id: east
    action: k8s.unhealthy_pods
    params: {namespace: shop, context: east}
  - id: west
    action: k8s.unhealthy_pods
    params: {namespace: shop, context: west}
""", "two.yaml")
        started = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE)
        summary = await finished(client, started.incident_id)
    assert summary["steps"]["east"]["output"]["top_reason"] == "CrashLoopBackOff"
    assert summary["steps"]["west"]["output"]["healthy"] is True
    assert summary["steps"]["west"]["output"]["total"] == 2  # only checkout runs in the healthy cluster


@pytest.mark.scenario("oom")
async def test_a_raise_that_does_not_stop_the_oom_kills_is_put_back(client: Client, worker: Worker, unique: str,
                                                                     cluster: SimCluster) -> None:
    pod = crash_looping_pod(cluster.url, "shop", "app=search")
    incident = await start(client, "k8s-oom-killed", unique, {"alertname": "KubeContainerOOMKilled",
                                                             "namespace": "shop", "pod": pod, "container": "search"},
                           memory_factor=1.1, max_memory="512Mi", stable_for="2s", verify_timeout="5s")
    await approve(client, incident, "approve_raise")
    summary = await finished(client, incident)
    deployment = cluster.get("/apis/apps/v1/namespaces/shop/deployments/search")
    steps = summary["steps"]
    assert summary["outcome"] == "rolled_back"
    assert steps["raise_limit"]["output"]["after"]["resources"]["search"]["limits"]["memory"] == "282Mi"
    # The new pods still crash (282Mi < the 300Mi the image needs), so the rollout never completes.
    assert steps["verify_rollout"]["status"] == "failed"
    assert "not complete after 5s" in steps["verify_rollout"]["error"]["message"]
    assert steps["restore_limit"]["output"]["after"]["resources"]["search"]["limits"]["memory"] == "256Mi"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "256Mi"


@pytest.mark.scenario("bad-rollout")
async def test_a_dry_run_incident_shows_the_rollback_and_changes_nothing(client: Client, worker: Worker,
                                                                         unique: str, cluster: SimCluster) -> None:
    pod = crash_looping_pod(cluster.url, "shop", "app=cart")
    plan = compile_file(RUNBOOKS / "k8s-pod-crashlooping.yaml")
    started = await incidents.start_incident(
        client, plan, alert=alert(alertname="KubePodCrashLooping", namespace="shop", pod=pod),
        params={"stable_for": "2s"}, key=unique, task_queue=TEST_TASK_QUEUE, dry_run=True)
    await approve(client, started.incident_id, "approve_rollback")
    summary = await finished(client, started.incident_id)
    rollback = summary["steps"]["rollback"]["output"]
    deployment = cluster.get("/apis/apps/v1/namespaces/shop/deployments/cart")
    patches = [r for r in cluster.requests() if r["method"] in ("PATCH", "POST", "PUT", "DELETE")]
    assert rollback["dry_run"] is True and rollback["after"]["images"] == {"cart": "shop/cart:1.4.2"}
    assert patches and all(r["query"].get("dryRun") == "All" for r in patches)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "shop/cart:1.4.3"
    # Nothing was really rolled back, so verification reports the truth: the rollout is still stalled.
    assert summary["steps"]["verify_rollout"]["status"] == "failed"


@pytest.mark.scenario("oom")
async def test_an_oom_loop_reported_as_crash_looping_gets_the_memory_raise(client: Client, worker: Worker,
                                                                          unique: str, cluster: SimCluster) -> None:
    pod = crash_looping_pod(cluster.url, "shop", "app=search")
    incident = await start(client, "k8s-pod-crashlooping", unique, {"alertname": "KubePodCrashLooping",
                                                                   "namespace": "shop", "pod": pod,
                                                                   "container": "search"},
                           stable_for="2s", max_memory="512Mi")
    asked = await approve(client, incident, "approve_memory_raise")
    summary = await finished(client, incident)
    deployment = cluster.get("/apis/apps/v1/namespaces/shop/deployments/search")
    steps = summary["steps"]
    # search 3.1.0 went out a day ago: no rollout to blame, so the OOM kills decide.
    assert steps["changes"]["output"]["recent_rollout"] is False
    assert "crash-loop on OOM kills (container search)" in asked["message"] and "512Mi" in asked["message"]
    assert summary["outcome"] == "succeeded"
    assert "approve_rollback" not in steps and "no_rollout" not in steps
    assert steps["raise_memory"]["output"]["before"]["resources"]["search"]["limits"]["memory"] == "256Mi"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "384Mi"
    assert deployment["status"]["availableReplicas"] == 2
