"""`gke.node_pool_status`: a node pool's status, version, zones, autoscaling limits and running operations."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.gke.api import PoolRef, pool_record, read_pool, running_operations
from activities.gke.schemas import NODE_POOL, gke_params


@action("gke.node_pool_status", params=gke_params({"node_pool": NODE_POOL}, ["node_pool"]))
async def node_pool_status(inp: ActionInput) -> dict[str, Any]:
    """A GKE node pool: status, version, zones, autoscaling limits, operations running on it."""
    ref = PoolRef.of(inp.params)
    record = pool_record(await read_pool(ref, inp.params["api_timeout"]))
    running = await running_operations(ref, inp.params["api_timeout"])
    return {**record, "running_operations": running, "busy": bool(running)}
