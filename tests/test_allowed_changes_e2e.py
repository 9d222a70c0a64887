"""An alert never aims a change where the runbook does not allow it: the shipped containment runbook through the
real wire (Temporal dev server, in-process worker, the simulated cluster as a process), started from the labels
falcosidekick sends, approved by a person, and the cluster read back afterwards.

The workflow refuses what the runbook's `changes` block and the built-in protected namespaces forbid before the
activity is scheduled; the worker checks again with what only it knows (its current kubeconfig context, the
namespaces its operator protects), so both sides are exercised here.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as kube
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.library import compile_text
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.k8s_sim import SimCluster
from tests.runbook_run import RUNBOOKS, alert, approve, finished
from tests.test_k8s_runbooks import REAL_ALERTS

CONTAINMENT = (RUNBOOKS / "k8s-security-containment.yaml").read_text()
SHIPPED_CHANGES = 'changes:\n  clusters: ["*"]\n  namespaces: ["*"]\n'


def containment(changes: str = SHIPPED_CHANGES) -> str:
    """The shipped containment runbook, with its `changes` block replaced by `changes`."""
    assert SHIPPED_CHANGES in CONTAINMENT
    return CONTAINMENT.replace(SHIPPED_CHANGES, changes)


async def start_containment(client: Client, unique: str, namespace: str, pod: str,
                            changes: str = SHIPPED_CHANGES) -> str:
    plan = compile_text(containment(changes), "k8s-security-containment.yaml")
    labels = {**REAL_ALERTS["k8s-security-containment"], "k8s_ns_name": namespace, "k8s_pod_name": pod}
    started = await incidents.start_incident(client, plan, alert=alert(**labels), key=unique,
                                             task_queue=TEST_TASK_QUEUE, started_by="alertmanager")
    return started.incident_id


def first_pod(cluster: SimCluster, namespace: str, app: str) -> str:
    return cluster.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{app}")["items"][0]["metadata"][
        "name"]


def policies(cluster: SimCluster, namespace: str) -> list[dict[str, Any]]:
    return cluster.get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies")["items"]


def policy_writes(cluster: SimCluster) -> list[dict[str, Any]]:
    return [r for r in cluster.requests() if "networkpolicies" in r["path"] and r["method"] != "GET"]


async def scheduled_actions(client: Client, incident: str) -> list[str]:
    """The activity types the workflow scheduled, from its history: tells which side refused."""
    history = await client.get_workflow_handle(incident).fetch_history()
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")]


async def refused_isolation(client: Client, incident: str) -> dict[str, Any]:
    """Approve the isolation (a person saying yes does not widen what the runbook allows); the refused step."""
    await approve(client, incident, "approve_isolation")
    summary = await finished(client, incident)
    assert summary["outcome"] == "failed"
    isolate = summary["steps"]["isolate"]
    assert isolate["status"] == "failed" and isolate["error"]["type"] == "ChangeNotAllowed"
    assert "approve_lift" not in summary["steps"]
    return isolate["error"]


@pytest.mark.scenario("healthy")
async def test_containment_aimed_at_kube_system_is_refused_and_creates_nothing(
        client: Client, worker: Worker, unique: str, cluster: SimCluster) -> None:
    """The reported case: `namespace=kube-system, deployment=coredns` and the shipped runbook."""
    kube.AppsV1Api(cluster.api()).create_namespaced_deployment("kube-system", {
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"app": "coredns"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "coredns"}},
                 "template": {"metadata": {"labels": {"app": "coredns"}},
                              "spec": {"containers": [{"name": "coredns", "image": "coredns/coredns:1.11.1"}]}}}})

    async def coredns_pods() -> list[dict[str, Any]]:
        return cluster.get("/api/v1/namespaces/kube-system/pods?labelSelector=app%3Dcoredns")["items"]

    pods = await eventually(coredns_pods, bool, timeout=30)
    incident = await start_containment(client, unique, "kube-system", pods[0]["metadata"]["name"])

    error = await refused_isolation(client, incident)
    assert error["message"] == (
        "refused to change deployments/coredns in namespace kube-system on the current kubeconfig context: "
        "kube-system is a protected namespace, changed only by a runbook whose changes.namespaces lists it by name "
        "(this one lists: *)")
    assert policies(cluster, "kube-system") == []
    assert policy_writes(cluster) == []
    scheduled = await scheduled_actions(client, incident)
    assert "k8s.workload_of" in scheduled and "k8s.isolate" not in scheduled, "the workflow refused it itself"
    timeline = await incidents.incident_timeline(client, incident)
    failed = [e for e in timeline if e["kind"] == "step_failed" and e.get("step") == "isolate"]
    assert [e["detail"]["error"]["message"] for e in failed] == [error["message"]]


@pytest.mark.scenario("healthy")
async def test_a_namespace_outside_the_runbooks_list_is_refused(client: Client, worker: Worker, unique: str,
                                                              cluster: SimCluster) -> None:
    incident = await start_containment(client, unique, "shop", first_pod(cluster, "shop", "checkout"),
                                       changes='changes:\n  clusters: ["*"]\n  namespaces: [payments, "team-*"]\n')
    error = await refused_isolation(client, incident)
    assert error["message"] == (
        "refused to change deployments/checkout in namespace shop on the current kubeconfig context: namespace shop "
        "is not in the runbook's changes.namespaces (payments, team-*)")
    assert policies(cluster, "shop") == []
    assert policy_writes(cluster) == []
    assert "k8s.isolate" not in await scheduled_actions(client, incident)


@pytest.mark.scenario("healthy")
async def test_an_allowed_namespace_and_cluster_are_isolated(client: Client, worker: Worker, unique: str,
                                                            cluster: SimCluster) -> None:
    """The step gives no context: the worker names the kubeconfig's current one (`sim`) and finds it allowed."""
    incident = await start_containment(client, unique, "shop", first_pod(cluster, "shop", "checkout"),
                                       changes="changes:\n  clusters: [sim]\n  namespaces: [shop]\n")
    await approve(client, incident, "approve_isolation")
    await eventually(lambda: incidents.show_incident(client, incident),
                     lambda s: any(p["step"] == "approve_lift" for p in s["pending_approvals"]), timeout=60)
    assert [p["metadata"]["name"] for p in policies(cluster, "shop")] == ["incidentctl-isolate-checkout"]
    await approve(client, incident, "approve_lift", who="dana")
    summary = await finished(client, incident)
    assert summary["outcome"] == "succeeded"
    assert policies(cluster, "shop") == []


@pytest.mark.scenario("healthy")
async def test_the_worker_refuses_a_cluster_only_it_can_name(client: Client, worker: Worker, unique: str,
                                                             cluster: SimCluster) -> None:
    """No context in the step: the workflow cannot know which cluster that is and lets it through; the worker
    resolves the kubeconfig's current context (`sim`) and refuses it."""
    incident = await start_containment(client, unique, "shop", first_pod(cluster, "shop", "checkout"),
                                       changes='changes:\n  clusters: ["prod-*"]\n  namespaces: [shop]\n')
    error = await refused_isolation(client, incident)
    assert error["message"] == (
        "refused to change deployments/checkout in namespace shop on the current kubeconfig context: context sim is "
        "not in the runbook's changes.clusters (prod-*)")
    assert policy_writes(cluster) == []
    assert "k8s.isolate" in await scheduled_actions(client, incident), "the worker refused it"


@pytest.mark.scenario("healthy")
async def test_namespaces_the_worker_protects_are_refused_by_the_worker(
        client: Client, worker: Worker, unique: str, cluster: SimCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runbook reaches `shop` only through a glob; the worker's operator protects `shop`. The workflow
    (built-in list only, deterministic) schedules the step; the activity refuses it."""
    monkeypatch.setenv("INCIDENTCTL_PROTECTED_NAMESPACES", "vault,shop")
    incident = await start_containment(client, unique, "shop", first_pod(cluster, "shop", "checkout"),
                                       changes='changes:\n  clusters: ["*"]\n  namespaces: ["sh*"]\n')
    error = await refused_isolation(client, incident)
    assert error["message"].startswith("refused to change deployments/checkout in namespace shop")
    assert "shop is a protected namespace" in error["message"]
    assert policy_writes(cluster) == []
    assert "k8s.isolate" in await scheduled_actions(client, incident), "the worker refused it"
