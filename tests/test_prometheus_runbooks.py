"""The shipped Kubernetes runbooks verify recovery in Prometheus when the worker has one: end to end on the dev
server, with Debian's Prometheus scraping the simulated cluster's kube-state-metrics series."""

from __future__ import annotations

import re
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
from incidentctl.library import compile_file
from incidentctl.promstack import ServerProcess, start_prometheus
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.k8s_sim import SimCluster, run_action
from tests.runbook_run import RUNBOOKS, alert, approve, finished, start, waiting_on
from tests.test_k8s_alert_runbooks import waiting_pod

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


def _stuck(cluster: SimCluster) -> dict[str, str]:
    return {"alertname": "KubeDeploymentRolloutStuck", "namespace": "shop", "deployment": "reviews"}


def _waiting(cluster: SimCluster) -> dict[str, str]:
    return {"alertname": "KubeContainerWaiting", "namespace": "shop", "pod": waiting_pod(cluster, "orders"),
            "container": "orders", "reason": "CreateContainerConfigError"}


def _not_ready(cluster: SimCluster) -> dict[str, str]:
    return {"alertname": "KubePodNotReady", "namespace": "shop", "pod": waiting_pod(cluster, "ledger")}


def _oom(cluster: SimCluster) -> dict[str, str]:
    return {"alertname": "KubeContainerOOMKilled", "namespace": "shop", "container": "search",
            "pod": crash_looping_pod(cluster.url, "shop", "app=search")}


@needs_prometheus
# `seen_broken`: Prometheus' answer to the step's own query differed before the remedy. Not for the OOM restarts: a
# 2-second window rarely holds one of the sim's backed-off restarts (the crash-loop test above shows the restart
# query seeing them over 30 seconds).
@pytest.mark.parametrize(("runbook", "labels", "params", "approval", "metric", "seen_broken"), [
    pytest.param("k8s-deployment-rollout-stuck", _stuck, {"stable_for": "2s", "metric_for": "2s"}, "approve_rollback",
                 "verify_progressing_metric", True, marks=pytest.mark.scenario("rollout-stuck"), id="rollout-stuck"),
    pytest.param("k8s-container-waiting", _waiting, {"metric_for": "2s"}, "approve_rollback", "verify_ready_metric",
                 True, marks=pytest.mark.scenario("config-error"), id="container-waiting"),
    pytest.param("k8s-pod-not-ready", _not_ready, {"metric_for": "2s"}, "approve_rollback", "verify_ready_metric",
                 True, marks=pytest.mark.scenario("unschedulable-rollout"), id="pod-not-ready"),
    pytest.param("k8s-oom-killed", _oom, {"stable_for": "2s", "max_memory": "512Mi"}, "approve_raise",
                 "verify_restarts_metric", False, marks=pytest.mark.scenario("oom"), id="oom-killed"),
])
async def test_every_shipped_metric_verification_holds_once_the_remedy_worked(
        client: Client, worker: Worker, unique: str, cluster: SimCluster, prometheus: ServerProcess, runbook: str,
        labels: Any, params: dict[str, str], approval: str, metric: str, seen_broken: bool) -> None:
    incident = await start(client, runbook, unique, labels(cluster), **params)
    await eventually(lambda: incidents.show_incident(client, incident), waiting_on(approval), timeout=60)
    # Prometheus scrapes the broken state for a few seconds before the remedy.
    scrapes = 'count_over_time(up{job="kube-state-metrics"}[1m])'
    await eventually(lambda: run_action("prometheus.query", {"query": scrapes}),
                     lambda answer: (answer["value"] or 0) >= 5, timeout=60, interval=0.5)
    await approve(client, incident, approval)
    summary = await finished(client, incident)
    assert summary["outcome"] == "succeeded", summary.get("failure")
    output = summary["steps"][metric]["output"]
    assert summary["steps"][metric]["status"] == "succeeded"
    # Every shipped verification compares with 0 (no restarts, nothing missing, no Progressing=false).
    assert output["ok"] is True and output["value"] == 0.0 and output["count"] == 1, output
    if seen_broken:  # not vacuous: over the incident, the same query said otherwise before the remedy
        history = await run_action("prometheus.query", {"query": output["query"], "range": "2m", "step": "1s"})
        seen = {point[1] for series in history["series"] for point in series["points"]}
        assert seen - {0.0}, f"{output['query']} was {seen} all along"


@needs_prometheus
@pytest.mark.scenario("replicas-mismatch")
async def test_a_metric_that_does_not_recover_fails_the_step_and_the_runbook_pages(
        client: Client, worker: Worker, unique: str, cluster: SimCluster, prometheus: ServerProcess,
        tmp_path: Path) -> None:
    """The shipped replicas-mismatch runbook asking for one replica more than desired, with a 3-second timeout:
    the rollback works, Prometheus never agrees, the step fails as VerificationFailed and the rollback section
    pages a human."""
    text = (RUNBOOKS / "k8s-deployment-replicas-mismatch.yaml").read_text()
    indent = " " * 14
    demanding = text.replace('condition: ">= 0"', 'condition: ">= 1"').replace(
        f"{indent}interval: 5s\n{indent}timeout: 10m\n", f"{indent}interval: 1s\n{indent}timeout: 3s\n")
    assert demanding.count("timeout: 3s") == 1 and '">= 1"' in demanding
    path = tmp_path / "k8s-deployment-replicas-mismatch.yaml"
    path.write_text(demanding)
    started = await incidents.start_incident(
        client, compile_file(path), key=unique, task_queue=TEST_TASK_QUEUE, started_by="alertmanager",
        alert=alert(alertname="KubeDeploymentReplicasMismatch", namespace="shop", deployment="payments"),
        params={"metric_for": "1s"})
    desired = 'kube_deployment_spec_replicas{deployment="payments"}'
    await eventually(lambda: run_action("prometheus.query", {"query": desired}),
                     lambda answer: answer["count"] == 1, timeout=60, interval=0.5)  # scraped before the step asks
    await approve(client, started.incident_id, "approve_rollback")
    summary = await finished(client, started.incident_id)
    steps: dict[str, Any] = summary["steps"]
    assert summary["outcome"] == "rolled_back"  # its rollback section ran
    assert steps["verify"]["status"] == "succeeded", "Kubernetes says the rollout is complete"
    metric = steps["verify_available_metric"]
    assert metric["status"] == "failed" and metric["error"]["type"] == "VerificationFailed", metric
    # The last value is 0.0, or -1.0 when Prometheus had not scraped the last replica yet: either is below 1.
    last = re.search(r"did not hold \(every sample >= 1\) for 1s within 3s: last value (-?[\d.]+) of 1 samples",
                     metric["error"]["message"])
    assert last is not None and float(last.group(1)) < 1, metric["error"]["message"]
    assert steps["escalate"]["status"] == "succeeded" and "done" not in steps
