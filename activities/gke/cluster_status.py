"""`gke.cluster_status`: a cluster's status, version, node count, node pools and running operations."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.gke.api import READ_CLUSTER, PoolRef, call, enum_name, pool_record, running_operations
from activities.gke.schemas import gke_params


@action("gke.cluster_status", params=gke_params({}))
async def cluster_status(inp: ActionInput) -> dict[str, Any]:
    """A GKE cluster: status, control plane version, node count, its node pools, operations running on it."""
    ref = PoolRef.of(inp.params)
    cluster = await call("get_cluster", {"name": ref.cluster_name}, what=ref.describe(), permission=READ_CLUSTER,
                         timeout_s=inp.params["api_timeout"])
    status = enum_name(cluster.status)
    return {"name": cluster.name, "location": cluster.location, "status": status, "running": status == "RUNNING",
            "status_message": cluster.status_message or None, "version": cluster.current_master_version,
            "endpoint": cluster.endpoint, "current_node_count": cluster.current_node_count,
            "node_pools": [pool_record(pool) for pool in cluster.node_pools],
            "running_operations": await running_operations(ref, inp.params["api_timeout"])}
