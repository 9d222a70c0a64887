"""Prometheus text from the simulated cluster, shaped like kube-state-metrics (`/metrics`) and the kubelet's
cAdvisor endpoint (`/metrics/cadvisor`), so the unmodified kube-prometheus rules can be evaluated against it.

Names and label names are kube-state-metrics' own (docs/metrics/workload/*.md there); only what our rules read
is exported. Values come from the objects the controllers keep, read at the simulator's clock, so a pod that
has crash-looped for 12 minutes of seeded history shows its restarts at the first scrape. cAdvisor's CFS
counters are accumulated here: their rate follows the image's `cpu_demand` and the container's CPU limit, and
they never go backwards while the container runs, even when a test changes the image's behaviour mid-run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from incidentctl.k8ssim.cluster import Cluster
from incidentctl.k8ssim.controllers import DEPLOYMENT, NODE, POD, REPLICA_SET
from incidentctl.k8ssim.images import throttled_fraction
from incidentctl.k8ssim.store import Obj
from incidentctl.k8ssim.units import parse_quantity, parse_time

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CFS_PERIODS_PER_SECOND = 10  # the kernel's default CFS period is 100 ms
PHASES = ("Pending", "Succeeded", "Failed", "Unknown", "Running")
CONDITION_STATUSES = ("true", "false", "unknown")
# kube-state-metrics reports any other Deployment condition reason as "unknown" (bounded label values).
DEPLOYMENT_REASONS = frozenset({
    "ReplicaSetUpdated", "ReplicaSetCreateError", "NewReplicaSetCreated", "FoundNewReplicaSet",
    "NewReplicaSetAvailable", "ProgressDeadlineExceeded", "DeploymentPaused", "DeploymentResumed",
    "MinimumReplicasAvailable", "MinimumReplicasUnavailable", ""})
RESOURCE_UNITS = {"cpu": "core", "memory": "byte"}

Labels = dict[str, str]


@dataclass
class Family:
    name: str
    kind: str  # gauge or counter
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, labels: Labels, value: float) -> None:
        self.samples.append((labels, value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(families: list[Family]) -> str:
    """The Prometheus text exposition format (0.0.4)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{family.name}{{{text}}} {_number(value)}")
    return "\n".join(lines) + "\n"


def _condition_samples(family: Family, base: Labels, status: str) -> None:
    """One sample per possible status, 1 for the current one: how kube-state-metrics reports conditions."""
    for candidate in CONDITION_STATUSES:
        family.add({**base, "status": candidate}, float(status.lower() == candidate))


def _owner_labels(obj: Obj) -> Labels:
    refs = obj["metadata"].get("ownerReferences") or []
    if not refs:
        return {"owner_kind": "<none>", "owner_name": "<none>", "owner_is_controller": "<none>"}
    ref = refs[0]
    return {"owner_kind": ref.get("kind", ""), "owner_name": ref.get("name", ""),
            "owner_is_controller": "true" if ref.get("controller") else "false"}


def _quantity(value: str) -> float | None:
    try:
        return float(parse_quantity(value))
    except (ValueError, ZeroDivisionError):
        return None


class PodFamilies:
    """kube_pod_* series."""

    def __init__(self) -> None:
        self.info = Family("kube_pod_info", "gauge", "Information about pod.")
        self.owner = Family("kube_pod_owner", "gauge", "Information about the Pod's owner.")
        self.phase = Family("kube_pod_status_phase", "gauge", "The pods current phase.")
        self.ready = Family("kube_pod_status_ready", "gauge", "Describes whether the pod is ready to serve requests.")
        self.container_info = Family("kube_pod_container_info", "gauge", "Information about a container in a pod.")
        self.restarts = Family("kube_pod_container_status_restarts_total", "counter",
                               "The number of container restarts per container.")
        self.waiting = Family("kube_pod_container_status_waiting_reason", "gauge",
                              "Describes the reason the container is currently in waiting state.")
        self.terminated = Family("kube_pod_container_status_last_terminated_reason", "gauge",
                                 "Describes the last reason the container was in terminated state.")
        self.requests = Family("kube_pod_container_resource_requests", "gauge",
                               "The number of requested request resource by a container.")
        self.limits = Family("kube_pod_container_resource_limits", "gauge",
                             "The number of requested limit resource by a container.")

    def families(self) -> list[Family]:
        return [self.info, self.owner, self.phase, self.ready, self.container_info, self.restarts, self.waiting,
                self.terminated, self.requests, self.limits]

    def add(self, pod: Obj) -> None:
        meta, spec, status = pod["metadata"], pod.get("spec", {}), pod.get("status", {})
        base = {"namespace": meta["namespace"], "pod": meta["name"], "uid": meta["uid"]}
        node = spec.get("nodeName", "")
        owner = _owner_labels(pod)
        self.info.add({**base, "host_ip": status.get("hostIP", ""), "pod_ip": status.get("podIP", ""),
                       "node": node, "created_by_kind": owner["owner_kind"], "created_by_name": owner["owner_name"],
                       "priority_class": spec.get("priorityClassName", ""),
                       "host_network": "true" if spec.get("hostNetwork") else "false"}, 1)
        self.owner.add({**base, **owner}, 1)
        phase = status.get("phase", "")
        for candidate in PHASES:
            self.phase.add({**base, "phase": candidate}, float(phase == candidate))
        ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
        if ready is not None:
            for candidate in CONDITION_STATUSES:
                self.ready.add({**base, "condition": candidate}, float(ready.get("status", "").lower() == candidate))
        images = {c["name"]: c.get("image", "") for c in spec.get("containers", [])}
        for container in status.get("containerStatuses", []):
            name = container["name"]
            labels = {**base, "container": name}
            self.container_info.add({**labels, "image_spec": images.get(name, ""), "image": container.get("image", ""),
                                     "image_id": container.get("imageID", ""),
                                     "container_id": container.get("containerID", "")}, 1)
            self.restarts.add(labels, container.get("restartCount", 0))
            waiting = container.get("state", {}).get("waiting")
            if waiting is not None:
                self.waiting.add({**labels, "reason": waiting.get("reason", "")}, 1)
            terminated = (container.get("lastState") or {}).get("terminated")
            if terminated is not None:
                self.terminated.add({**labels, "reason": terminated.get("reason", "")}, 1)
        for container in spec.get("containers", []):
            resources = container.get("resources", {})
            for family, kind in ((self.requests, "requests"), (self.limits, "limits")):
                for resource, raw in sorted(resources.get(kind, {}).items()):
                    value = _quantity(raw)
                    if value is not None:
                        family.add({**base, "container": container["name"], "node": node, "resource": resource,
                                    "unit": RESOURCE_UNITS.get(resource, "integer")}, value)


def _deployment_families(deployments: list[Obj]) -> list[Family]:
    def gauge(name: str, help_text: str, read: Callable[[Obj], float]) -> Family:
        family = Family(name, "gauge", help_text)
        for d in deployments:
            family.add({"namespace": d["metadata"]["namespace"], "deployment": d["metadata"]["name"]}, read(d))
        return family

    def status(key: str) -> Callable[[Obj], float]:
        return lambda d: d.get("status", {}).get(key, 0)

    conditions = Family("kube_deployment_status_condition", "gauge",
                        "The current status conditions of a deployment.")
    for d in deployments:
        for cond in d.get("status", {}).get("conditions", []):
            reason = cond.get("reason", "")
            base = {"namespace": d["metadata"]["namespace"], "deployment": d["metadata"]["name"],
                    "reason": reason if reason in DEPLOYMENT_REASONS else "unknown", "condition": cond["type"]}
            _condition_samples(conditions, base, cond.get("status", ""))
    return [
        gauge("kube_deployment_spec_replicas", "Number of desired pods for a deployment.",
              lambda d: d["spec"].get("replicas", 1)),
        gauge("kube_deployment_status_replicas", "The number of replicas per deployment.", status("replicas")),
        gauge("kube_deployment_status_replicas_available", "The number of available replicas per deployment.",
              status("availableReplicas")),
        gauge("kube_deployment_status_replicas_updated", "The number of updated replicas per deployment.",
              status("updatedReplicas")),
        gauge("kube_deployment_status_replicas_unavailable", "The number of unavailable replicas per deployment.",
              status("unavailableReplicas")),
        gauge("kube_deployment_metadata_generation",
              "Sequence number representing a specific generation of the desired state.",
              lambda d: d["metadata"].get("generation", 1)),
        gauge("kube_deployment_status_observed_generation",
              "The generation observed by the deployment controller.", status("observedGeneration")),
        conditions,
    ]


def _replica_set_owner(replica_sets: list[Obj]) -> Family:
    family = Family("kube_replicaset_owner", "gauge", "Information about the ReplicaSet's owner.")
    for rs in replica_sets:
        family.add({"namespace": rs["metadata"]["namespace"], "replicaset": rs["metadata"]["name"],
                    **_owner_labels(rs)}, 1)
    return family


def _node_families(nodes: list[Obj]) -> list[Family]:
    conditions = Family("kube_node_status_condition", "gauge", "The condition of a cluster node.")
    unschedulable = Family("kube_node_spec_unschedulable", "gauge", "Whether a node can schedule new pods.")
    for node in nodes:
        name = node["metadata"]["name"]
        for cond in node.get("status", {}).get("conditions", []):
            _condition_samples(conditions, {"node": name, "condition": cond["type"]}, cond.get("status", ""))
        unschedulable.add({"node": name}, float(bool(node.get("spec", {}).get("unschedulable"))))
    return [conditions, unschedulable]


def kube_state_metrics(cluster: Cluster) -> str:
    """What kube-state-metrics would serve for the cluster as it is now."""
    cluster.controllers.reconcile()
    store = cluster.store
    pods = PodFamilies()
    for pod in store.list(POD):
        pods.add(pod)
    return render([*pods.families(), *_deployment_families(store.list(DEPLOYMENT)),
                   _replica_set_owner(store.list(REPLICA_SET)), *_node_families(store.list(NODE))])


@dataclass
class _CfsCounter:
    at: datetime
    periods: float
    throttled: float


class CadvisorCounters:
    """container_cpu_cfs_periods_total / container_cpu_cfs_throttled_periods_total per running container.

    cAdvisor reports CFS statistics only for containers with a CPU quota (a CPU limit). A container counts
    CFS_PERIODS_PER_SECOND periods per second of running; a share `1 - limit/cpu_demand` of them is throttled
    when the limit is below what the image wants. The first scrape of a container accounts for the time it
    has run already (history seeded in the past), later scrapes add what passed since, at the current rate.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._counters: dict[tuple[str, str, str], _CfsCounter] = {}

    def render(self) -> str:
        self.cluster.controllers.reconcile()
        now = self.cluster.now()
        periods = Family("container_cpu_cfs_periods_total", "counter",
                         "Number of elapsed enforcement period intervals.")
        throttled = Family("container_cpu_cfs_throttled_periods_total", "counter",
                           "Number of throttled period intervals.")
        alive: set[tuple[str, str, str]] = set()
        for pod in self.cluster.store.list(POD):
            for labels, key, share, started in self._running_with_quota(pod):
                alive.add(key)
                counter = self._advance(key, share, started, now)
                periods.add(labels, math.floor(counter.periods))
                throttled.add(labels, math.floor(counter.throttled))
        for gone in set(self._counters) - alive:  # a restarted container is a new cgroup with new counters
            del self._counters[gone]
        return render([periods, throttled])

    def _advance(self, key: tuple[str, str, str], share: float, started: datetime, now: datetime) -> _CfsCounter:
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _CfsCounter(started, 0.0, 0.0)
        ran = max(0.0, (now - counter.at).total_seconds())
        counter.at = max(counter.at, now)
        counter.periods += ran * CFS_PERIODS_PER_SECOND
        counter.throttled += ran * CFS_PERIODS_PER_SECOND * share
        return counter

    def _running_with_quota(self, pod: Obj) -> list[tuple[Labels, tuple[str, str, str], float, datetime]]:
        meta = pod["metadata"]
        containers = {c["name"]: c for c in pod.get("spec", {}).get("containers", [])}
        limits = {name: c.get("resources", {}).get("limits", {}).get("cpu") for name, c in containers.items()}
        found = []
        for status in pod.get("status", {}).get("containerStatuses", []):
            running = status.get("state", {}).get("running")
            limit = _quantity(limits.get(status["name"]) or "")
            started = parse_time(running.get("startedAt")) if running else None
            if started is None or not limit:
                continue
            behaviour = self.cluster.images.get(status.get("image", ""))
            share = float(throttled_fraction(behaviour, containers.get(status["name"], {})))
            container_id = hashlib.sha256(f"{meta['uid']}/{status['name']}/{running['startedAt']}".encode()
                                          ).hexdigest()
            labels = {"container": status["name"], "id": f"/kubepods/pod{meta['uid']}/{container_id}",
                      "image": status.get("image", ""), "name": container_id, "namespace": meta["namespace"],
                      "pod": meta["name"]}
            found.append((labels, (meta["uid"], status["name"], container_id), share, started))
        return found


def add_routes(app: web.Application, cluster: Cluster) -> None:
    """GET /metrics (kube-state-metrics) and /metrics/cadvisor (the kubelet's cAdvisor), unauthenticated."""
    cadvisor = CadvisorCounters(cluster)

    async def state_metrics(_: web.Request) -> web.Response:
        return web.Response(body=kube_state_metrics(cluster).encode(), headers={"Content-Type": CONTENT_TYPE})

    async def cadvisor_metrics(_: web.Request) -> web.Response:
        return web.Response(body=cadvisor.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/metrics", state_metrics)
    app.router.add_get("/metrics/cadvisor", cadvisor_metrics)
