"""The shipped Kubernetes runbooks verify recovery in Prometheus when the worker has one: end to end on the dev
server, with Debian's Prometheus scraping the simulated cluster's kube-state-metrics series."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.prometheus.api import URL_ENV
from incidentctl import client as incidents
from incidentctl.devserver import free_port
from incidentctl.k8ssim.process import crash_looping_pod
from incidentctl.promstack import ServerProcess, start_prometheus
from tests.conftest import eventually
from tests.k8s_sim import SimCluster, run_action
from tests.runbook_run import approve, finished, start, waiting_on

needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None,
                                      reason="prometheus not installed (bash scripts/setup.sh installs it)")


@pytest.fixture
def prometheus(cluster: SimCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """Prometheus scraping the test's cluster, named to the in-process worker as its INCIDENTCTL_PROMETHEUS_URL."""
    # No Alertmanager: the rules' alerts have nowhere to go; these incidents are started by the test.
    server = start_prometheus(tmp_path / "prometheus", cluster.url, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv(URL_ENV, server.url)
    try:
        yield server
    finally:
        server.stop()


def _restarts(pod_pattern: str, window: str) -> str:
    return (f'sum(increase(kube_pod_container_status_restarts_total{{namespace="shop",pod=~"{pod_pattern}"}}'
            f'[{window}]))')


@needs_prometheus
@pytest.mark.scenario("bad-rollout")
async def test_a_rolled_back_crash_loop_is_verified_by_the_restart_counter_prometheus_scraped(
        client: Client, worker: Worker, unique: str, cluster: SimCluster, prometheus: ServerProcess) -> None:
    pod = crash_looping_pod(cluster.url, "shop", "app=cart")
    incident = await start(client, "k8s-pod-crashlooping", unique, {"alertname": "KubePodCrashLooping",
                                                                   "namespace": "shop", "pod": pod},
                           stable_for="3s")
    await eventually(lambda: incidents.show_incident(client, incident), waiting_on("approve_rollback"), timeout=60)
    # Before the rollback the same query sees the crash loop: the verification below is not vacuous.
    crashing = await eventually(lambda: run_action("prometheus.query", {"query": _restarts("cart-.*", "30s")}),
                                lambda answer: (answer["value"] or 0) > 0, timeout=60, interval=0.5)
    assert crashing["prometheus"] == prometheus.url

    await approve(client, incident, "approve_rollback")
    summary = await finished(client, incident)
    steps: dict[str, Any] = summary["steps"]
    assert summary["outcome"] == "succeeded", summary.get("failure")
    assert steps["prometheus"]["output"] == {"configured": True, "url": prometheus.url, "source": URL_ENV}
    metric = steps["verify_restarts_metric"]
    assert metric["status"] == "succeeded"
    output = metric["output"]
    assert output["ok"] is True and output["value"] == 0.0 and output["count"] == 1
    assert output["condition"] == "every sample == 0" and output["prometheus"] == prometheus.url
    assert 'pod=~"cart-[a-z0-9]+-[a-z0-9]+"}[3s]' in output["query"]
    # It ran after the Kubernetes checks, and the incident says so in order.
    timeline = await incidents.incident_timeline(client, incident)
    finished_steps = [e["step"] for e in timeline if e["kind"] == "step_succeeded"]
    assert finished_steps.index("verify_stable") < finished_steps.index("verify_restarts_metric") \
        < finished_steps.index("rolled_back")


@needs_prometheus
@pytest.mark.scenario("replicas-mismatch")
async def test_a_replicas_mismatch_is_verified_by_available_replicas_holding_in_prometheus(
        client: Client, worker: Worker, unique: str, cluster: SimCluster, prometheus: ServerProcess) -> None:
    """The step's own `prometheus_url` this time (the worker's is the same server), and a `for` window."""
    incident = await start(client, "k8s-deployment-replicas-mismatch", unique,
                           {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop",
                            "deployment": "payments"}, metric_for="3s", prometheus_url=prometheus.url)
    await eventually(lambda: incidents.show_incident(client, incident), waiting_on("approve_rollback"), timeout=60)
    surplus = ('kube_deployment_status_replicas_available{deployment="payments"}'
               ' - kube_deployment_spec_replicas{deployment="payments"}')
    missing = await eventually(lambda: run_action("prometheus.query", {"query": surplus}),
                               lambda answer: answer["value"] is not None, timeout=60, interval=0.5)
    assert missing["value"] < 0, "Prometheus sees the missing replica before the rollback"

    await approve(client, incident, "approve_rollback")
    summary = await finished(client, incident)
    steps: dict[str, Any] = summary["steps"]
    assert summary["outcome"] == "succeeded", summary.get("failure")
    assert steps["prometheus"]["output"]["source"] == "param"
    output = steps["verify_available_metric"]["output"]
    assert output["ok"] is True and output["held_for_s"] >= 3 and output["value"] >= 0
    assert output["samples"] == [{"labels": {"namespace": "shop", "deployment": "payments"}, "value": output["value"]}]
