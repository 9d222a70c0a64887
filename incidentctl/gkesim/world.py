"""The fake's state: clusters, node pools and the operations that change them, on a clock the caller passes.

Operations behave as GKE's do for the client: a mutating call answers at once with an operation PENDING, which
becomes RUNNING and then DONE after `operation_s`; the change lands when it is DONE. While one runs on a cluster,
another mutating call on that cluster is refused with FAILED_PRECONDITION ("incompatible operation"), which is why
a retried resize must wait for the operation already running rather than start a second one.
Pure: no I/O and no wall clock, so tests can step it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

API_ROOT = "https://container.googleapis.com/v1"
# Before this share of its duration has passed an operation is PENDING, then RUNNING.
PENDING_SHARE = 0.2


class GkeApiError(Exception):
    """An error answer: HTTP code, google.rpc status name and message, in Google's JSON error shape."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "status": self.status, "message": self.message}}


@dataclass
class Autoscaling:
    enabled: bool = False
    min_node_count: int = 0
    max_node_count: int = 0

    def to_json(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        return {"enabled": True, "minNodeCount": self.min_node_count, "maxNodeCount": self.max_node_count}


@dataclass
class NodePool:
    name: str
    node_count: int  # per zone, as SetNodePoolSize counts
    locations: list[str]
    version: str
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    status: str = "RUNNING"
    status_message: str = ""
    previous_version: str | None = None  # set after a failed upgrade: what a rollback returns to
    # What the pool was created with; GKE reports this, never the current size (resizes do not change it).
    initial_node_count: int = -1

    def __post_init__(self) -> None:
        if self.initial_node_count < 0:
            self.initial_node_count = self.node_count


@dataclass
class Cluster:
    project: str
    location: str
    name: str
    master_version: str
    endpoint: str
    ca_certificate: str  # base64 PEM, as masterAuth.clusterCaCertificate
    pools: dict[str, NodePool] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/clusters/{self.name}"


@dataclass
class Operation:
    name: str
    cluster: Cluster
    pool: str
    operation_type: str
    started_at: float
    duration_s: float
    effect: Callable[[], None]
    status: str = "PENDING"
    start_time: str = ""
    end_time: str = ""

    @property
    def running(self) -> bool:
        return self.status in ("PENDING", "RUNNING")


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class World:
    operation_s: float
    clusters: dict[str, Cluster] = field(default_factory=dict)  # by path
    operations: dict[str, Operation] = field(default_factory=dict)  # by "projects/p/locations/l/operations/id"
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add(self, cluster: Cluster) -> Cluster:
        self.clusters[cluster.path] = cluster
        return cluster

    # ---- time

    def tick(self, now: float) -> None:
        """Move every operation along to where `now` puts it; a finished one applies its change."""
        for op in self.operations.values():
            if not op.running:
                continue
            elapsed = now - op.started_at
            if elapsed >= op.duration_s:
                op.effect()
                op.status, op.end_time = "DONE", _timestamp()
                pool = op.cluster.pools.get(op.pool)
                if pool is not None and pool.status == "RECONCILING":
                    pool.status = "RUNNING"
            elif elapsed >= op.duration_s * PENDING_SHARE:
                op.status = "RUNNING"

    # ---- reads

    def cluster(self, project: str, location: str, name: str) -> Cluster:
        found = self.clusters.get(f"projects/{project}/locations/{location}/clusters/{name}")
        if found is None:
            raise GkeApiError(404, "NOT_FOUND", f"Not found: projects/{project}/locations/{location}/clusters/{name}.")
        return found

    def pool(self, project: str, location: str, cluster: str, name: str) -> tuple[Cluster, NodePool]:
        owner = self.cluster(project, location, cluster)
        found = owner.pools.get(name)
        if found is None:
            raise GkeApiError(404, "NOT_FOUND", f"Not found: {owner.path}/nodePools/{name}.")
        return owner, found

    def operation(self, project: str, location: str, op_id: str) -> Operation:
        found = self.operations.get(f"projects/{project}/locations/{location}/operations/{op_id}")
        if found is None:
            raise GkeApiError(404, "NOT_FOUND", f"Not found: projects/{project}/locations/{location}/operations/"
                                                f"{op_id}.")
        return found

    def operations_in(self, project: str, location: str) -> list[Operation]:
        return [op for op in self.operations.values() if op.cluster.project == project
                and (location == "-" or op.cluster.location == location)]

    # ---- changes: each starts an operation

    def _start(self, cluster: Cluster, pool: NodePool, operation_type: str, effect: Callable[[], None],
               now: float) -> Operation:
        busy = next((op for op in self.operations.values() if op.cluster is cluster and op.running), None)
        if busy is not None:
            raise GkeApiError(400, "FAILED_PRECONDITION", f"Cluster is running incompatible operation "
                                                          f"{busy.name.rsplit('/', 1)[-1]}.")
        op_id = f"operation-{next(self._ids)}"
        name = f"projects/{cluster.project}/locations/{cluster.location}/operations/{op_id}"
        op = self.operations[name] = Operation(name, cluster, pool.name, operation_type, now, self.operation_s,
                                               effect, start_time=_timestamp())
        pool.status = "RECONCILING"
        return op

    def set_size(self, project: str, location: str, cluster: str, pool: str, node_count: Any,
                 now: float) -> Operation:
        owner, found = self.pool(project, location, cluster, pool)
        if not isinstance(node_count, int) or node_count < 0:
            raise GkeApiError(400, "INVALID_ARGUMENT", f"Invalid node count {node_count!r}.")

        def resize() -> None:
            found.node_count = node_count

        return self._start(owner, found, "SET_NODE_POOL_SIZE", resize, now)

    def set_autoscaling(self, project: str, location: str, cluster: str, pool: str, spec: dict[str, Any],
                        now: float) -> Operation:
        owner, found = self.pool(project, location, cluster, pool)
        wanted = Autoscaling(bool(spec.get("enabled")), int(spec.get("minNodeCount") or 0),
                             int(spec.get("maxNodeCount") or 0))
        if wanted.enabled and not 0 <= wanted.min_node_count <= wanted.max_node_count:
            raise GkeApiError(400, "INVALID_ARGUMENT", f"Invalid autoscaling limits: min {wanted.min_node_count} "
                                                       f"max {wanted.max_node_count}.")

        def apply() -> None:
            found.autoscaling = wanted

        return self._start(owner, found, "UPDATE_CLUSTER", apply, now)

    def rollback(self, project: str, location: str, cluster: str, pool: str, now: float) -> Operation:
        owner, found = self.pool(project, location, cluster, pool)
        previous = found.previous_version
        if previous is None:
            raise GkeApiError(400, "FAILED_PRECONDITION", f"Node pool {pool} has no failed or aborted upgrade to "
                                                          "roll back.")

        def apply() -> None:
            found.version, found.previous_version, found.status_message = previous, None, ""

        return self._start(owner, found, "UPGRADE_NODES", apply, now)


# ---- JSON, in the REST API's shape (camelCase; enums by name)

def pool_json(cluster: Cluster, pool: NodePool) -> dict[str, Any]:
    link = f"{API_ROOT}/{cluster.path}/nodePools/{pool.name}"
    return {"name": pool.name, "initialNodeCount": pool.initial_node_count, "locations": pool.locations,
            "version": pool.version, "status": pool.status, "statusMessage": pool.status_message,
            "autoscaling": pool.autoscaling.to_json(), "selfLink": link,
            "instanceGroupUrls": [f"https://www.googleapis.com/compute/v1/projects/{cluster.project}/zones/{zone}/"
                                  f"instanceGroupManagers/gke-{cluster.name}-{pool.name}-grp"
                                  for zone in pool.locations]}


def cluster_json(cluster: Cluster) -> dict[str, Any]:
    return {"name": cluster.name, "location": cluster.location, "status": "RUNNING",
            "currentMasterVersion": cluster.master_version, "endpoint": cluster.endpoint,
            "masterAuth": {"clusterCaCertificate": cluster.ca_certificate},
            "currentNodeCount": sum(p.node_count * len(p.locations) for p in cluster.pools.values()),
            "nodePools": [pool_json(cluster, p) for p in cluster.pools.values()],
            "selfLink": f"{API_ROOT}/{cluster.path}"}


def operation_json(op: Operation) -> dict[str, Any]:
    body = {"name": op.name.rsplit("/", 1)[-1], "operationType": op.operation_type, "status": op.status,
            "location": op.cluster.location, "startTime": op.start_time,
            "selfLink": f"{API_ROOT}/{op.name}", "targetLink": f"{API_ROOT}/{op.cluster.path}/nodePools/{op.pool}"}
    if op.end_time:
        body["endTime"] = op.end_time
    return body
