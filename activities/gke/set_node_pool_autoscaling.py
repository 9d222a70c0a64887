"""`gke.set_node_pool_autoscaling`: set a node pool's autoscaling limits (or turn it off), within a bound."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.gke.api import UPDATE_CLUSTER, PoolRef, call, pool_record, read_pool, refuse
from activities.gke.mutation import change_pool
from activities.gke.schemas import HARD_MAX_NODES, NODE_POOL, NODE_POOL_LEASE, WAIT, gke_params


@action(
    "gke.set_node_pool_autoscaling",
    params=gke_params({
        "node_pool": NODE_POOL,
        "enabled": {"type": "boolean", "default": True},
        "min_node_count": {"type": "integer", "minimum": 0, "description": "per zone"},
        "max_node_count": {"type": "integer", "minimum": 0, "description": "per zone"},
        "max_nodes": {"type": "integer", "minimum": 0, "maximum": HARD_MAX_NODES,
                      "description": "the most nodes max_node_count may allow in all the pool's zones together"},
        **WAIT,
    }, ["node_pool", "max_nodes"]),
    mutates=True, idempotent=True, lease=NODE_POOL_LEASE,
    description="Set a GKE node pool's autoscaling limits (per zone; max_node_count in all zones at most "
                "max_nodes) or turn autoscaling off, and wait for the operation.",
)
async def set_node_pool_autoscaling(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    ref = PoolRef.of(p)
    before = pool_record(await read_pool(ref, p["api_timeout"]))
    if p["enabled"]:
        if "min_node_count" not in p or "max_node_count" not in p:
            raise refuse("enabling autoscaling needs both min_node_count and max_node_count", "InvalidParams")
        if p["min_node_count"] > p["max_node_count"]:
            raise refuse(f"min_node_count {p['min_node_count']} is above max_node_count {p['max_node_count']}",
                         "InvalidParams")
        total = p["max_node_count"] * before["zones"]
        if total > min(p["max_nodes"], HARD_MAX_NODES):
            raise refuse(f"autoscaling {ref.describe()} up to {p['max_node_count']} nodes per zone ({total} in its "
                         f"{before['zones']} zones) is above the bound max_nodes {p['max_nodes']}")
        wanted = {"enabled": True, "min_node_count": p["min_node_count"], "max_node_count": p["max_node_count"]}
    else:
        wanted = {"enabled": False}
    record = {"node_pool": ref.node_pool, "before": before["autoscaling"], "autoscaling": wanted,
              "dry_run": inp.dry_run}
    if inp.dry_run:
        return {**record, "would": f"set the autoscaling of {ref.describe()} to {wanted}"}

    async def start() -> Any:
        return await call("set_node_pool_autoscaling", {"name": ref.pool_name, "autoscaling": wanted},
                          what=ref.describe(), permission=UPDATE_CLUSTER, timeout_s=p["api_timeout"])

    return {**record, **await change_pool(ref, p, start)}
