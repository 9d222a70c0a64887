"""`gke.resize_node_pool`: set a node pool's size (nodes per zone), within a bound on its total the runbook gives."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.gke.api import UPDATE_CLUSTER, PoolRef, call, pool_record, read_pool, refuse
from activities.gke.mutation import change_pool
from activities.gke.schemas import HARD_MAX_NODES, NODE_POOL, NODE_POOL_LEASE, WAIT, gke_params


@action(
    "gke.resize_node_pool",
    params=gke_params({
        "node_pool": NODE_POOL,
        "node_count": {"type": "integer", "minimum": 0, "description": "nodes per zone of the pool (GKE's setSize)"},
        "max_nodes": {"type": "integer", "minimum": 0, "maximum": HARD_MAX_NODES,
                      "description": "the most nodes the pool may have in all its zones together after the resize"},
        "min_nodes": {"type": "integer", "minimum": 0, "default": 0,
                      "description": "the fewest nodes the pool may have in all its zones together"},
        **WAIT,
    }, ["node_pool", "node_count", "max_nodes"]),
    mutates=True, idempotent=True, lease=NODE_POOL_LEASE,
    description=f"Resize a GKE node pool to node_count per zone, its total within [min_nodes, max_nodes] (never "
                f"above {HARD_MAX_NODES}), and wait for the operation.",
)
async def resize_node_pool(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    ref = PoolRef.of(p)
    before = pool_record(await read_pool(ref, p["api_timeout"]))
    total = p["node_count"] * before["zones"]
    low, high = p["min_nodes"], min(p["max_nodes"], HARD_MAX_NODES)
    if not low <= total <= high:
        raise refuse(f"resizing {ref.describe()} to {p['node_count']} nodes per zone ({total} in its "
                     f"{before['zones']} zones) is outside the bounds [{low}, {high}]")
    record = {"node_pool": ref.node_pool, "node_count": p["node_count"], "total_nodes": total,
              "zones": before["zones"], "autoscaling": before["autoscaling"], "dry_run": inp.dry_run}
    if inp.dry_run:
        return {**record, "would": f"resize {ref.describe()} to {p['node_count']} nodes per zone ({total} in all)"}

    async def start() -> Any:
        return await call("set_node_pool_size", {"name": ref.pool_name, "node_count": p["node_count"]},
                          what=ref.describe(), permission=UPDATE_CLUSTER, timeout_s=p["api_timeout"])

    return {**record, **await change_pool(ref, p, start)}
