"""The simulator's kube-state-metrics and cAdvisor shaped series (in process; the real scrape by Prometheus is in
test_alert_pipeline.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta

import pytest

from incidentctl.k8ssim.cluster import Cluster
from incidentctl.k8ssim.controllers import DEPLOYMENT, POD
from incidentctl.k8ssim.images import ImageBehaviour
from incidentctl.k8ssim.metrics import CadvisorCounters, kube_state_metrics
from incidentctl.k8ssim.scenarios import build, deployment

Sample = tuple[str, dict[str, str], float]
_LINE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>.*)\} (?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[Sample]:
    samples = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = _LINE.match(line)
        assert match, f"not an exposition line: {line!r}"
        samples.append((match["name"], dict(_LABEL.findall(match["labels"])), float(match["value"])))
    return samples


def find(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    [found] = find(samples, name, **labels)
    return found[2]


def pods(cluster: Cluster, app: str) -> list[dict]:
    return cluster.list(POD, "shop", f"app={app}")["items"]


def test_a_bad_rollout_looks_as_kube_state_metrics_shows_it() -> None:
    cluster = build(["bad-rollout"])
    samples = parse(kube_state_metrics(cluster))
    crashing = next(p for p in pods(cluster, "cart") if p["status"]["containerStatuses"][0]["restartCount"] > 0)
    name, uid = crashing["metadata"]["name"], crashing["metadata"]["uid"]
    labels = {"namespace": "shop", "pod": name, "uid": uid, "container": "cart"}
    assert value(samples, "kube_pod_container_status_waiting_reason", **labels, reason="CrashLoopBackOff") == 1
    assert value(samples, "kube_pod_container_status_last_terminated_reason", **labels, reason="Error") == 1
    assert value(samples, "kube_pod_container_status_restarts_total", **labels) == \
        crashing["status"]["containerStatuses"][0]["restartCount"]
    assert value(samples, "kube_pod_container_info", **labels, image="shop/cart:1.4.3") == 1
    assert value(samples, "kube_pod_status_ready", pod=name, condition="false") == 1
    assert value(samples, "kube_pod_status_phase", pod=name, phase="Running") == 1
    assert value(samples, "kube_pod_status_phase", pod=name, phase="Pending") == 0
    owner = find(samples, "kube_pod_owner", pod=name)[0][1]
    assert (owner["owner_kind"], owner["owner_is_controller"]) == ("ReplicaSet", "true")
    assert value(samples, "kube_replicaset_owner", replicaset=owner["owner_name"], owner_kind="Deployment",
                 owner_name="cart") == 1
    cart = {"namespace": "shop", "deployment": "cart"}
    assert value(samples, "kube_deployment_spec_replicas", **cart) == 3
    assert value(samples, "kube_deployment_status_replicas_available", **cart) == 3
    assert value(samples, "kube_deployment_status_replicas_updated", **cart) == 1
    assert value(samples, "kube_deployment_metadata_generation", **cart) == 2
    assert value(samples, "kube_deployment_status_observed_generation", **cart) == 2
    # One series per status, the current one 1; the reason is a label, as kube-state-metrics has it.
    progressing = find(samples, "kube_deployment_status_condition", **cart, condition="Progressing")
    assert {(s[1]["status"], s[1]["reason"], s[2]) for s in progressing} == {
        ("true", "ProgressDeadlineExceeded", 0), ("false", "ProgressDeadlineExceeded", 1),
        ("unknown", "ProgressDeadlineExceeded", 0)}
    assert value(samples, "kube_node_status_condition", node="node-1", condition="Ready", status="true") == 1
    assert value(samples, "kube_node_spec_unschedulable", node="node-1") == 0
    # Every sample carries only the labels its family has in kube-state-metrics (and no empty names).
    assert all(s[1] for s in samples)


def test_resources_oom_kills_and_unready_nodes() -> None:
    cluster = build(["oom", "node-not-ready"])
    samples = parse(kube_state_metrics(cluster))
    search = pods(cluster, "search")[0]["metadata"]["name"]
    assert value(samples, "kube_pod_container_status_last_terminated_reason", pod=search, reason="OOMKilled") == 1
    assert value(samples, "kube_pod_container_resource_limits", pod=search, resource="memory", unit="byte") == 256 << 20
    assert value(samples, "kube_pod_container_resource_requests", pod=search, resource="cpu", unit="core") == 0.1
    assert value(samples, "kube_node_status_condition", node="node-3", condition="Ready", status="unknown") == 1
    assert value(samples, "kube_node_status_condition", node="node-3", condition="Ready", status="true") == 0


def test_restart_counters_follow_the_simulator_clock() -> None:
    cluster = build(["bad-rollout"])
    labels = {"namespace": "shop", "container": "cart"}

    def restarts() -> float:
        return max(s[2] for s in find(parse(kube_state_metrics(cluster)), "kube_pod_container_status_restarts_total",
                                      **labels))

    now = restarts()
    with cluster.at(timedelta(minutes=-3)):  # three minutes later
        later = restarts()
    # 12 minutes of seeded crash loop show at the first scrape; the back-off caps at 30 s here: ~6 more in 3 minutes.
    assert now > 20 and later - now == pytest.approx(6, abs=1)


def _throttled_cluster(demand: str, limit: str | None) -> Cluster:
    cluster = build(["healthy"])
    cluster.images.set("shop/search:3.2", ImageBehaviour(cpu_demand=demand))
    spec = deployment("search", "shop/search:3.2", replicas=1)
    if limit:
        spec["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": limit}}
    with cluster.at(timedelta(minutes=10)):
        cluster.create(DEPLOYMENT, "shop", spec)
    cluster.controllers.settle()
    return cluster


def cfs(counters: CadvisorCounters) -> tuple[float, float]:
    samples = parse(counters.render())
    return (value(samples, "container_cpu_cfs_periods_total", namespace="shop", container="search"),
            value(samples, "container_cpu_cfs_throttled_periods_total", namespace="shop", container="search"))


def test_a_cpu_limit_below_the_image_demand_is_throttled_in_proportion() -> None:
    cluster = _throttled_cluster("500m", "250m")
    counters = CadvisorCounters(cluster)
    periods, throttled = cfs(counters)
    # Ten minutes of running at 10 CFS periods a second, half of them throttled (1 - 250m/500m).
    assert periods == pytest.approx(6000, abs=50)
    assert throttled / periods == pytest.approx(0.5, abs=0.01)
    labels = find(parse(counters.render()), "container_cpu_cfs_periods_total")[0][1]
    assert set(labels) == {"container", "id", "image", "name", "namespace", "pod"}

    with cluster.at(timedelta(minutes=-1)):
        later = cfs(counters)
    assert later[0] - periods == pytest.approx(600, abs=20)
    # The clock back at "now" and the image now wanting less: counters never go backwards, throttling stops.
    cluster.images.set("shop/search:3.2", ImageBehaviour(cpu_demand="100m"))
    after = cfs(counters)
    assert after[0] >= later[0] and after[1] >= later[1]
    with cluster.at(timedelta(minutes=-2)):
        calm = cfs(counters)
    assert calm[1] == after[1] and calm[0] > after[0]


@pytest.mark.parametrize(("demand", "limit", "series"), [("", "250m", 2), ("100m", "250m", 2), ("500m", None, 0)])
def test_no_demand_or_enough_cpu_is_never_throttled_and_no_limit_has_no_cfs_series(
        demand: str, limit: str | None, series: int) -> None:
    samples = parse(CadvisorCounters(_throttled_cluster(demand, limit)).render())
    assert len(find(samples, "container_cpu_cfs_periods_total", container="search")
               + find(samples, "container_cpu_cfs_throttled_periods_total", container="search")) == series
    assert all(s[2] == 0 for s in find(samples, "container_cpu_cfs_throttled_periods_total"))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (bash scripts/setup.sh)")
def test_promtool_accepts_the_exposition() -> None:
    cluster = build(["bad-rollout", "oom"])
    for text in (kube_state_metrics(cluster), CadvisorCounters(_throttled_cluster("500m", "250m")).render()):
        checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                                 timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr
