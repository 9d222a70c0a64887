"""The simulator's kubelet and scheduler behaviours behind the newer runbooks: config references that do not
resolve, failing readiness probes, pods no node can take, and CPU throttling. Seen through the official client
over HTTP, and in-process where the scenario's history matters."""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

from kubernetes import client

from incidentctl.k8ssim.configrefs import missing_reference
from incidentctl.k8ssim.images import ImageBehaviour, throttled_fraction
from incidentctl.k8ssim.scenarios import build
from incidentctl.k8ssim.store import BY_KIND

POD, EVENT = BY_KIND["Pod"], BY_KIND["Event"]


def _pods(cluster: Any, app: str) -> list[dict[str, Any]]:
    return [p for p in cluster.store.list(POD, "shop") if p["metadata"]["labels"]["app"] == app]


def _warnings(cluster: Any) -> list[tuple[str, str]]:
    return [(e["reason"], e["message"]) for e in cluster.store.list(EVENT, "shop") if e["type"] == "Warning"]


def test_config_references_are_resolved_as_the_kubelet_does() -> None:
    present = {("ConfigMap", "app"): {"db-host"}, ("Secret", "db"): {"password"}}

    def keys_of(kind: str, name: str) -> set[str] | None:
        return present.get((kind, name))

    def env(kind_ref: str, name: str, key: str, **extra: Any) -> dict[str, Any]:
        return {"env": [{"name": "X", "valueFrom": {kind_ref: {"name": name, "key": key, **extra}}}]}

    assert missing_reference(env("configMapKeyRef", "app", "db-host"), "shop", keys_of) is None
    assert missing_reference(env("configMapKeyRef", "app", "flags"), "shop", keys_of) == \
        "couldn't find key flags in ConfigMap shop/app"
    assert missing_reference(env("secretKeyRef", "db", "user"), "shop", keys_of) == \
        "couldn't find key user in Secret shop/db"
    assert missing_reference(env("configMapKeyRef", "nope", "x"), "shop", keys_of) == 'configmap "nope" not found'
    assert missing_reference(env("configMapKeyRef", "nope", "x", optional=True), "shop", keys_of) is None
    assert missing_reference({"envFrom": [{"secretRef": {"name": "gone"}}]}, "shop", keys_of) == \
        'secret "gone" not found'


async def test_a_missing_config_map_key_is_a_create_container_config_error(k8s_sim: Any) -> None:
    with k8s_sim("config-error") as sim:
        core = client.CoreV1Api(sim.api())
        pods = core.list_namespaced_pod("shop", label_selector="app=orders").items
        events = core.list_namespaced_event("shop", field_selector="reason=Failed").items
    waiting = [p for p in pods if p.status.container_statuses[0].state.waiting is not None]
    assert len(pods) == 3 and len(waiting) == 1  # revision 1 still serves with both pods
    state = waiting[0].status.container_statuses[0].state.waiting
    assert state.reason == "CreateContainerConfigError"
    assert state.message == "couldn't find key feature-flags in ConfigMap shop/orders-config"
    assert waiting[0].status.phase == "Pending"
    assert any(e.message == "Error: couldn't find key feature-flags in ConfigMap shop/orders-config"
               for e in events)


def test_a_container_already_running_keeps_the_values_it_started_with() -> None:
    cluster = build(["config-error"])
    running = [p["metadata"]["name"] for p in _pods(cluster, "orders") if p["status"]["phase"] == "Running"]
    cluster.replace(BY_KIND["ConfigMap"], "shop", "orders-config",
                    {"metadata": {"name": "orders-config", "namespace": "shop"}, "data": {}})
    cluster.controllers.settle()
    still = {p["metadata"]["name"]: p["status"]["phase"] for p in _pods(cluster, "orders")}
    assert running and all(still[name] == "Running" for name in running)


def test_an_image_failing_its_readiness_probe_stalls_the_rollout() -> None:
    cluster = build(["rollout-stuck"])
    reviews = cluster.store.require(BY_KIND["Deployment"], "shop", "reviews")
    progressing = next(c for c in reviews["status"]["conditions"] if c["type"] == "Progressing")
    new = [p for p in _pods(cluster, "reviews") if p["spec"]["containers"][0]["image"] == "shop/reviews:1.9.0"]
    ready = next(c for c in new[0]["status"]["conditions"] if c["type"] == "Ready")
    assert progressing["reason"] == "ProgressDeadlineExceeded"
    assert reviews["status"]["availableReplicas"] == 3 and len(new) == 1
    assert new[0]["status"]["phase"] == "Running" and new[0]["status"]["containerStatuses"][0]["started"] is True
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "ContainersNotReady", "containers with unready status: [reviews]")
    assert ("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503") in _warnings(cluster)


def test_a_pod_no_node_matches_stays_pending_with_the_schedulers_reason() -> None:
    cluster = build(["unschedulable-rollout"])
    pending = [p for p in _pods(cluster, "ledger") if p["status"]["phase"] == "Pending"]
    scheduled = next(c for c in pending[0]["status"]["conditions"] if c["type"] == "PodScheduled")
    message = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    assert len(pending) == 1 and "nodeName" not in pending[0]["spec"]
    assert (scheduled["status"], scheduled["reason"], scheduled["message"]) == ("False", "Unschedulable", message)
    assert ("FailedScheduling", message) in _warnings(cluster)


def test_cpu_throttling_follows_the_limit_and_the_demand() -> None:
    behaviour = ImageBehaviour(cpu_demand="600m")
    limited = {"resources": {"limits": {"cpu": "400m"}}}
    assert throttled_fraction(behaviour, limited) == Fraction(1, 3)
    assert throttled_fraction(behaviour, {"resources": {"limits": {"cpu": "1"}}}) == 0
    assert throttled_fraction(behaviour, {}) == 0  # no limit, no CFS quota
    assert throttled_fraction(ImageBehaviour(), limited) == 0


def _cpu_usage(sim: Any, pods: set[str]) -> dict[str, str]:
    # The simulated metrics API, like some real ones, ignores labelSelector: keep the pods asked about.
    listed = sim.get("/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods")["items"]
    return {i["metadata"]["name"]: i["containers"][0]["usage"]["cpu"] for i in listed if i["metadata"]["name"] in pods}


async def test_metrics_show_a_throttled_container_using_its_whole_limit(k8s_sim: Any) -> None:
    with k8s_sim("cpu-throttling", metrics_server=True) as sim:
        api = sim.api()
        core = client.CoreV1Api(api)
        old_pods = {p.metadata.name for p in core.list_namespaced_pod("shop", label_selector="app=recommend").items}
        before = _cpu_usage(sim, old_pods)
        client.AppsV1Api(api).patch_namespaced_deployment("recommend", "shop", {"spec": {"template": {"spec": {
            "containers": [{"name": "recommend", "resources": {"limits": {"cpu": "1"}}}]}}}})
        new_pods = {p.metadata.name for p in core.list_namespaced_pod("shop", label_selector="app=recommend").items
                    if p.spec.containers[0].resources.limits["cpu"] == "1"}
        deadline = time.monotonic() + 20
        while not (after := _cpu_usage(sim, new_pods)) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert before == dict.fromkeys(old_pods, "400m")  # wants 600m, gets its whole 400m quota
    assert new_pods and after and set(after.values()) == {"600m"}  # raised above the demand: no longer capped
