"""Seeded clusters: a healthy base plus named incidents, with history (rollouts minutes or days ago).

Every scenario shares the base: namespaces default/shop, three Ready nodes, a healthy `checkout` deployment,
and two tokens (full access for the worker, read-only for 403 tests).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from incidentctl.k8ssim.cluster import Cluster, Identity
from incidentctl.k8ssim.images import ImageBehaviour
from incidentctl.k8ssim.store import BY_KIND, Obj

WORKER_TOKEN = "incidentctl-sim-worker"
READONLY_TOKEN = "incidentctl-sim-readonly"
NAMESPACE = "shop"
NODES = ("node-1", "node-2", "node-3")
WRITES = {"create *", "update *", "patch *", "delete *"}


def _create(cluster: Cluster, kind: str, obj: Obj) -> Obj:
    resource = BY_KIND[kind]
    return cluster.create(resource, obj.get("metadata", {}).get("namespace", ""), obj)


def deployment(name: str, image: str, *, replicas: int = 3, env: dict[str, str] | None = None,
               memory_limit: str | None = None, cpu_limit: str | None = None, config_map: str | None = None,
               secret: str | None = None) -> Obj:
    container: dict[str, Any] = {"name": name, "image": image, "ports": [{"containerPort": 8080}],
                                 "env": [{"name": k, "value": v} for k, v in (env or {}).items()]}
    if memory_limit or cpu_limit:
        requests = {"memory": memory_limit or "64Mi", "cpu": "100m"}
        limits = {k: v for k, v in (("memory", memory_limit), ("cpu", cpu_limit)) if v}
        container["resources"] = {"requests": requests, "limits": limits}
    if config_map:
        container["envFrom"] = [{"configMapRef": {"name": config_map}}]
    if secret:
        container["env"].append({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret,
                                                                                       "key": "password"}}})
    return {"metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "progressDeadlineSeconds": 120,
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}}}}


def set_image(cluster: Cluster, name: str, image: str, env: dict[str, str] | None = None,
              env_from_config: dict[str, tuple[str, str]] | None = None) -> None:
    """`kubectl set image` (+ env, + env from ConfigMap keys): a new pod template, hence a new ReplicaSet
    revision."""
    patch: Obj = {"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}}
    variables = [{"name": k, "value": v} for k, v in (env or {}).items()]
    variables += [{"name": k, "valueFrom": {"configMapKeyRef": {"name": config_map, "key": key}}}
                  for k, (config_map, key) in (env_from_config or {}).items()]
    if variables:
        patch["spec"]["template"]["spec"]["containers"][0]["env"] = variables
    patch_deployment(cluster, name, patch)


def patch_deployment(cluster: Cluster, name: str, patch: Obj) -> None:
    cluster.patch(BY_KIND["Deployment"], NAMESPACE, name, patch, "application/strategic-merge-patch+json")


def base(cluster: Cluster) -> None:
    cluster.tokens[WORKER_TOKEN] = Identity("system:serviceaccount:incidentctl:worker")
    cluster.tokens[READONLY_TOKEN] = Identity("system:serviceaccount:incidentctl:readonly", set(WRITES) | {
        "create pods/eviction"})
    with cluster.at(timedelta(days=30)):
        for namespace in ("default", "kube-system", NAMESPACE):
            _create(cluster, "Namespace", {"metadata": {"name": namespace}})
        for node in NODES:
            _create(cluster, "Node", {"metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
                                      "spec": {}, "status": {"nodeInfo": {"kubeletVersion": "v1.31.0"},
                                                             "capacity": {"cpu": "4", "memory": "16Gi"}}})
            cluster.set_node_condition(node, "Ready", "True", "KubeletReady", "kubelet is posting ready status")
            for pressure in ("MemoryPressure", "DiskPressure", "PIDPressure"):
                cluster.set_node_condition(node, pressure, "False", f"KubeletHasNo{pressure}")
    with cluster.at(timedelta(days=3)):
        cluster.images.set("shop/checkout:2.7.0", ImageBehaviour(log=["checkout listening on :8080"]))
        _create(cluster, "Deployment", deployment("checkout", "shop/checkout:2.7.0", replicas=2))


Step = tuple[timedelta, Callable[[Cluster], None]]


def bad_rollout(cluster: Cluster) -> list[Step]:
    """shop/cart: revision 2 (image 1.4.3) went out 12 minutes ago and crash-loops; revision 1 was fine."""
    cluster.images.set("shop/cart:1.4.2", ImageBehaviour(cpu="120m", memory="180Mi",
                                                         log=["cart 1.4.2 starting", "cart listening on :8080"]))
    cluster.images.set("shop/cart:1.4.3", ImageBehaviour(
        mode="crash", log=["cart 1.4.3 starting", "loading pricing rules from PRICING_URL"],
        crash_log=["panic: assignment to entry in nil map", "goroutine 1 [running]:",
                   "main.loadRules(...) /src/cart/rules.go:88"]))

    def first_release(cluster: Cluster) -> None:
        _create(cluster, "ConfigMap", {"metadata": {"name": "cart-config", "namespace": NAMESPACE},
                                       "data": {"PRICING_URL": "http://pricing:8080"}})
        _create(cluster, "Secret", {"metadata": {"name": "cart-db", "namespace": NAMESPACE},
                                    "data": {"password": "c3VwZXItc2VjcmV0LWRiLXBhc3N3b3Jk"}})
        _create(cluster, "Deployment", deployment("cart", "shop/cart:1.4.2", env={"LOG_LEVEL": "info"},
                                                  config_map="cart-config", secret="cart-db"))
        _create(cluster, "PodDisruptionBudget", {"metadata": {"name": "cart", "namespace": NAMESPACE},
                                                 "spec": {"minAvailable": 2,
                                                          "selector": {"matchLabels": {"app": "cart"}}}})

    return [(timedelta(days=3), first_release),
            (timedelta(minutes=12), lambda c: set_image(c, "cart", "shop/cart:1.4.3", env={"LOG_LEVEL": "debug"}))]


def oom(cluster: Cluster) -> list[Step]:
    """shop/search needs ~300Mi since 3.1.0 but is limited to 256Mi: OOMKilled, restarting."""
    cluster.images.set("shop/search:3.1.0", ImageBehaviour(mode="oom", memory="300Mi", cpu="300m",
                                                           log=["search 3.1.0 warming index cache"],
                                                           crash_log=["loading index shard 7/12"]))
    return [(timedelta(days=1), lambda c: _create(c, "Deployment", deployment(
        "search", "shop/search:3.1.0", replicas=2, memory_limit="256Mi")))]


def node_not_ready(cluster: Cluster) -> list[Step]:
    """node-3 stopped posting status 6 minutes ago; the pods on it are not Ready."""
    cluster.images.set("shop/inventory:0.9.4", ImageBehaviour(log=["inventory listening on :8080"]))

    def inventory(cluster: Cluster) -> None:
        _create(cluster, "Deployment", deployment("inventory", "shop/inventory:0.9.4", replicas=3))
        _create(cluster, "PodDisruptionBudget", {"metadata": {"name": "inventory", "namespace": NAMESPACE},
                                                 "spec": {"maxUnavailable": 1,
                                                          "selector": {"matchLabels": {"app": "inventory"}}}})

    return [(timedelta(days=2), inventory),
            (timedelta(minutes=6), lambda c: c.set_node_condition("node-3", "Ready", "Unknown", "NodeStatusUnknown",
                                                                  "Kubelet stopped posting node status."))]


def replicas_mismatch(cluster: Cluster) -> list[Step]:
    """shop/payments wants 4 replicas; revision 2 (20 minutes ago) points at an image that does not exist."""
    cluster.images.set("shop/payments:5.0.1", ImageBehaviour(log=["payments listening on :8080"]))
    cluster.images.set("shop/payments:5.1.0-rc", ImageBehaviour(mode="pull_error"))
    return [(timedelta(days=5), lambda c: _create(c, "Deployment", deployment("payments", "shop/payments:5.0.1",
                                                                              replicas=4))),
            (timedelta(minutes=20), lambda c: set_image(c, "payments", "shop/payments:5.1.0-rc"))]


def rollout_stuck(cluster: Cluster) -> list[Step]:
    """shop/reviews: revision 2 (40 minutes ago) never passes its readiness probe; the rollout is past its progress
    deadline with the revision-1 pods still serving."""
    cluster.images.set("shop/reviews:1.8.0", ImageBehaviour(log=["reviews 1.8.0 listening on :8080"]))
    cluster.images.set("shop/reviews:1.9.0", ImageBehaviour(
        mode="unready", log=["reviews 1.9.0 listening on :8080", "GET /ready 503: ratings-db connection refused"],
        probe_failure="HTTP probe failed with statuscode: 503"))
    return [(timedelta(days=3), lambda c: _create(c, "Deployment", deployment("reviews", "shop/reviews:1.8.0"))),
            (timedelta(minutes=40), lambda c: set_image(c, "reviews", "shop/reviews:1.9.0"))]


def config_error(cluster: Cluster) -> list[Step]:
    """shop/orders: revision 2 (70 minutes ago) reads FEATURE_FLAGS from key `feature-flags` of ConfigMap
    orders-config, which has no such key: CreateContainerConfigError."""
    cluster.images.set("shop/orders:4.2.0", ImageBehaviour(log=["orders 4.2.0 listening on :8080"]))
    cluster.images.set("shop/orders:4.3.0", ImageBehaviour(log=["orders 4.3.0 listening on :8080"]))

    def first_release(cluster: Cluster) -> None:
        _create(cluster, "ConfigMap", {"metadata": {"name": "orders-config", "namespace": NAMESPACE},
                                       "data": {"db-host": "orders-db:5432"}})
        _create(cluster, "Deployment", deployment("orders", "shop/orders:4.2.0", replicas=2))

    return [(timedelta(days=3), first_release),
            (timedelta(minutes=70), lambda c: set_image(c, "orders", "shop/orders:4.3.0", env_from_config={
                "DB_HOST": ("orders-config", "db-host"), "FEATURE_FLAGS": ("orders-config", "feature-flags")}))]


def unschedulable_rollout(cluster: Cluster) -> list[Step]:
    """shop/ledger: revision 2 (25 minutes ago) asks for nodes labelled disktype=nvme, which no node has: the new
    pod stays Pending (Unschedulable)."""
    cluster.images.set("shop/ledger:2.0.3", ImageBehaviour(log=["ledger listening on :8080"]))
    return [(timedelta(days=4), lambda c: _create(c, "Deployment", deployment("ledger", "shop/ledger:2.0.3",
                                                                              replicas=2))),
            (timedelta(minutes=25), lambda c: patch_deployment(c, "ledger", {"spec": {"template": {"spec": {
                "nodeSelector": {"disktype": "nvme"}}}}}))]


def cpu_throttling(cluster: Cluster) -> list[Step]:
    """shop/recommend wants 600m of CPU since 2.3.0 but is limited to 400m: throttled a third of the time."""
    cluster.images.set("shop/recommend:2.3.0", ImageBehaviour(cpu_demand="600m", memory="200Mi",
                                                              log=["recommend 2.3.0 scoring with model v7"]))
    return [(timedelta(days=2), lambda c: _create(c, "Deployment", deployment(
        "recommend", "shop/recommend:2.3.0", replicas=2, memory_limit="512Mi", cpu_limit="400m")))]


SCENARIOS: dict[str, Callable[[Cluster], list[Step]]] = {
    "healthy": lambda cluster: [],
    "bad-rollout": bad_rollout,
    "oom": oom,
    "node-not-ready": node_not_ready,
    "replicas-mismatch": replicas_mismatch,
    "rollout-stuck": rollout_stuck,
    "config-error": config_error,
    "unschedulable-rollout": unschedulable_rollout,
    "cpu-throttling": cpu_throttling,
}


def build(names: list[str], cluster: Cluster | None = None) -> Cluster:
    """Seed the base and the named scenarios; their steps run oldest first so combined histories stay coherent."""
    cluster = cluster or Cluster()
    base(cluster)
    steps: list[Step] = []
    for name in names:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        steps.extend(SCENARIOS[name](cluster))
    for ago, step in sorted(steps, key=lambda s: s[0], reverse=True):
        with cluster.at(ago):
            step(cluster)
    cluster.controllers.settle()
    return cluster
