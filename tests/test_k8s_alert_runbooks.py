"""The runbooks for KubeDeploymentRolloutStuck, KubeContainerWaiting, KubePodNotReady and CPUThrottlingHigh end to
end: real Temporal dev server, in-process worker, the simulated cluster as a process. Each test seeds the incident
its runbook is for, starts it from the labels the real alert carries, approves as a member of group `sre` of
config/people.yaml, and reads the cluster back afterwards."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from kubernetes import client as kube
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from tests.conftest import eventually
from tests.k8s_sim import SimCluster
from tests.runbook_run import approve, finished, start


def pods(cluster: SimCluster, app: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"labelSelector": f"app={app}"})
    return cluster.get(f"/api/v1/namespaces/shop/pods?{query}")["items"]


def waiting_pod(cluster: SimCluster, app: str) -> str:
    """The pod a KubeContainerWaiting/KubePodNotReady alert would name: one that has not started."""
    return next(p["metadata"]["name"] for p in pods(cluster, app) if p["status"]["phase"] == "Pending")


def deployment(cluster: SimCluster, name: str) -> dict[str, Any]:
    return cluster.get(f"/apis/apps/v1/namespaces/shop/deployments/{name}")


def container(cluster: SimCluster, name: str) -> dict[str, Any]:
    return deployment(cluster, name)["spec"]["template"]["spec"]["containers"][0]


# -- KubeDeploymentRolloutStuck -------------------------------------------------------------------------------------

@pytest.mark.scenario("rollout-stuck")
async def test_a_stuck_rollout_is_rolled_back_with_approval(client: Client, worker: Worker, unique: str,
                                                           cluster: SimCluster) -> None:
    incident = await start(client, "k8s-deployment-rollout-stuck", unique,
                           {"alertname": "KubeDeploymentRolloutStuck", "namespace": "shop", "deployment": "reviews"},
                           stable_for="2s")
    asked = await approve(client, incident, "approve_rollback")
    summary = await finished(client, incident)
    steps = summary["steps"]

    assert "exceeded its progress deadline" in asked["message"]
    assert "containers with unready status: [reviews]" in asked["message"]
    assert "shop/reviews:1.8.0 -> shop/reviews:1.9.0" in asked["message"]
    assert "ratings-db connection refused" in asked["message"]  # what the unready pod logs
    assert summary["outcome"] == "succeeded"
    assert steps["status"]["output"]["rollout"] == "stalled"
    assert steps["verify_stable"]["output"]["ok"] is True
    assert container(cluster, "reviews")["image"] == "shop/reviews:1.8.0"
    assert deployment(cluster, "reviews")["status"]["availableReplicas"] == 3
    assert {p["spec"]["containers"][0]["image"] for p in pods(cluster, "reviews")} == {"shop/reviews:1.8.0"}


@pytest.mark.scenario("rollout-stuck")
async def test_a_stuck_rollout_older_than_the_window_needs_a_human(client: Client, worker: Worker, unique: str,
                                                                  cluster: SimCluster) -> None:
    incident = await start(client, "k8s-deployment-rollout-stuck", unique,
                           {"alertname": "KubeDeploymentRolloutStuck", "namespace": "shop", "deployment": "reviews"},
                           rollback_window_minutes=20)
    summary = await finished(client, incident)
    message = summary["steps"]["needs_a_human"]["output"]["message"]
    assert "approve_rollback" not in summary["steps"] and "rollback" not in summary["steps"]
    assert "no rollout in the last 20 minutes to roll back" in message and "needs a human" in message
    assert "containers with unready status: [reviews]" in message
    assert container(cluster, "reviews")["image"] == "shop/reviews:1.9.0"


# -- KubeContainerWaiting -------------------------------------------------------------------------------------------

@pytest.mark.scenario("config-error")
async def test_a_missing_config_map_key_is_named_and_its_rollout_rolled_back(client: Client, worker: Worker,
                                                                            unique: str, cluster: SimCluster) -> None:
    pod = waiting_pod(cluster, "orders")
    incident = await start(client, "k8s-container-waiting", unique,
                           {"alertname": "KubeContainerWaiting", "namespace": "shop", "pod": pod,
                            "container": "orders", "reason": "CreateContainerConfigError"})
    asked = await approve(client, incident, "approve_rollback")
    summary = await finished(client, incident)
    steps = summary["steps"]

    missing = "couldn't find key feature-flags in ConfigMap shop/orders-config"
    assert missing in steps["diagnosis"]["output"]["message"]
    assert missing in asked["message"] and "Revision 2 brought it in; roll back to revision 1" in asked["message"]
    assert summary["outcome"] == "succeeded"
    assert container(cluster, "orders")["image"] == "shop/orders:4.2.0"
    assert "env" not in container(cluster, "orders") or not any(
        e["name"] == "FEATURE_FLAGS" for e in container(cluster, "orders")["env"])
    assert {p["status"]["phase"] for p in pods(cluster, "orders")} == {"Running"}
    assert deployment(cluster, "orders")["status"]["availableReplicas"] == 2


@pytest.mark.scenario("replicas-mismatch")
async def test_an_image_that_cannot_be_pulled_is_named_and_rolled_back(client: Client, worker: Worker, unique: str,
                                                                      cluster: SimCluster) -> None:
    pod = waiting_pod(cluster, "payments")
    # An older kube-prometheus: no reason label; the runbook finds the reason itself.
    incident = await start(client, "k8s-container-waiting", unique,
                           {"alertname": "KubeContainerWaiting", "namespace": "shop", "pod": pod,
                            "container": "payments"})
    asked = await approve(client, incident, "approve_rollback")
    summary = await finished(client, incident)
    assert "container payments cannot pull image shop/payments:5.1.0-rc" in asked["message"]
    assert summary["steps"]["pods"]["output"]["cause"] in ("ImagePullBackOff", "ErrImagePull")
    assert summary["outcome"] == "succeeded"
    assert container(cluster, "payments")["image"] == "shop/payments:5.0.1"
    assert deployment(cluster, "payments")["status"]["availableReplicas"] == 4


@pytest.mark.scenario("config-error")
async def test_a_waiting_container_without_a_recent_rollout_needs_a_human(client: Client, worker: Worker,
                                                                         unique: str, cluster: SimCluster) -> None:
    pod = waiting_pod(cluster, "orders")
    incident = await start(client, "k8s-container-waiting", unique,
                           {"alertname": "KubeContainerWaiting", "namespace": "shop", "pod": pod,
                            "container": "orders", "reason": "CreateContainerConfigError"},
                           rollback_window_minutes=30)
    summary = await finished(client, incident)
    message = summary["steps"]["needs_a_fix"]["output"]["message"]
    assert message.startswith("Needs a human:")
    assert "couldn't find key feature-flags in ConfigMap shop/orders-config" in message
    assert "no rollout in the last 30 minutes" in message
    assert "approve_rollback" not in summary["steps"]
    assert container(cluster, "orders")["image"] == "shop/orders:4.3.0"


# -- KubePodNotReady ------------------------------------------------------------------------------------------------

@pytest.mark.scenario("unschedulable-rollout")
async def test_an_unschedulable_rollout_is_rolled_back(client: Client, worker: Worker, unique: str,
                                                       cluster: SimCluster) -> None:
    pod = waiting_pod(cluster, "ledger")
    incident = await start(client, "k8s-pod-not-ready", unique,
                           {"alertname": "KubePodNotReady", "namespace": "shop", "pod": pod})
    asked = await approve(client, incident, "approve_rollback")
    summary = await finished(client, incident)

    assert "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector" in asked["message"]
    assert "spec.nodeSelector" in asked["message"] and "disktype" in asked["message"]
    assert summary["steps"]["nodes"]["output"]["bad_node"] is False
    assert summary["outcome"] == "succeeded"
    assert "nodeSelector" not in deployment(cluster, "ledger")["spec"]["template"]["spec"]
    assert {p["status"]["phase"] for p in pods(cluster, "ledger")} == {"Running"}
    assert deployment(cluster, "ledger")["status"]["availableReplicas"] == 2


@pytest.mark.scenario("node-not-ready")
async def test_pods_not_ready_on_a_dead_node_blame_the_node(client: Client, worker: Worker, unique: str,
                                                            cluster: SimCluster) -> None:
    on_node_3 = next(p["metadata"]["name"] for p in pods(cluster, "inventory") if p["spec"]["nodeName"] == "node-3")
    before = deployment(cluster, "inventory")
    incident = await start(client, "k8s-pod-not-ready", unique,
                           {"alertname": "KubePodNotReady", "namespace": "shop", "pod": on_node_3})
    summary = await finished(client, incident)
    message = summary["steps"]["bad_node"]["output"]["message"]
    assert "the node node-3 is not Ready. The node is the problem" in message and "k8s-node-not-ready" in message
    assert "approve_rollback" not in summary["steps"]
    assert deployment(cluster, "inventory")["metadata"]["generation"] == before["metadata"]["generation"]
    assert not cluster.get("/api/v1/nodes/node-3")["spec"].get("unschedulable")


# -- CPUThrottlingHigh ----------------------------------------------------------------------------------------------

def throttling_alert(cluster: SimCluster) -> dict[str, str]:
    return {"alertname": "CPUThrottlingHigh", "namespace": "shop", "pod": pods(cluster, "recommend")[0]["metadata"]
            ["name"], "container": "recommend", "severity": "info"}


@pytest.mark.scenario("cpu-throttling")
async def test_a_throttled_container_gets_a_bounded_cpu_raise(client: Client, worker: Worker, unique: str,
                                                              cluster: SimCluster) -> None:
    incident = await start(client, "k8s-cpu-throttling", unique, throttling_alert(cluster), stable_for="2s",
                           verify_timeout="60s")
    asked = await approve(client, incident, "approve_raise")
    summary = await finished(client, incident)
    steps = summary["steps"]
    assert "Raise its CPU limit 400m -> 600m (x1.5, never above 2)?" in asked["message"]
    assert steps["current"]["output"]["cores"] == 0.4
    assert summary["outcome"] == "succeeded"
    assert steps["raise_limit"]["output"]["after"]["resources"]["recommend"]["limits"]["cpu"] == "600m"
    assert container(cluster, "recommend")["resources"]["limits"] == {"cpu": "600m", "memory": "512Mi"}
    assert {p["spec"]["containers"][0]["resources"]["limits"]["cpu"] for p in pods(cluster, "recommend")} == {"600m"}


@pytest.mark.scenario("cpu-throttling")
async def test_a_cpu_limit_at_its_bound_is_not_raised(client: Client, worker: Worker, unique: str,
                                                      cluster: SimCluster) -> None:
    incident = await start(client, "k8s-cpu-throttling", unique, throttling_alert(cluster), max_cpu="400m")
    summary = await finished(client, incident)
    assert "already at max_cpu 400m" in summary["steps"]["at_the_bound"]["output"]["message"]
    assert "raise_limit" not in summary["steps"]
    assert container(cluster, "recommend")["resources"]["limits"]["cpu"] == "400m"


@pytest.mark.scenario("cpu-throttling")
async def test_a_cpu_raise_that_cannot_roll_out_puts_the_old_limit_back(client: Client, worker: Worker, unique: str,
                                                                        cluster: SimCluster) -> None:
    incident = await start(client, "k8s-cpu-throttling", unique, throttling_alert(cluster), stable_for="2s",
                           verify_timeout="5s")
    await eventually(lambda: incidents.show_incident(client, incident),
                     lambda state: any(p["step"] == "approve_raise" for p in state["pending_approvals"]), timeout=60)
    # Meanwhile every node is cordoned for maintenance: the pods with the new limit cannot be scheduled.
    core = kube.CoreV1Api(cluster.api())
    for node in ("node-1", "node-2", "node-3"):
        core.patch_node(node, {"spec": {"unschedulable": True}}, _preload_content=False)
    await approve(client, incident, "approve_raise")
    summary = await finished(client, incident)
    steps = summary["steps"]
    assert summary["outcome"] == "rolled_back"
    assert steps["raise_limit"]["output"]["after"]["resources"]["recommend"]["limits"]["cpu"] == "600m"
    assert "not complete after 5s" in steps["verify_rollout"]["error"]["message"]
    assert steps["restore_limit"]["output"]["after"]["resources"]["recommend"]["limits"]["cpu"] == "400m"
    assert "restored: true" in steps["escalate"]["output"]["message"]
    assert container(cluster, "recommend")["resources"]["limits"]["cpu"] == "400m"
