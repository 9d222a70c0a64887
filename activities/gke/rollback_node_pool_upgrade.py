"""`gke.rollback_node_pool_upgrade`: roll back a node pool's failed or aborted upgrade, and wait for it."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.gke.api import UPDATE_CLUSTER, PoolRef, call, pool_record, read_pool
from activities.gke.mutation import change_pool
from activities.gke.schemas import NODE_POOL, NODE_POOL_LEASE, WAIT, gke_params


@action(
    "gke.rollback_node_pool_upgrade",
    params=gke_params({"node_pool": NODE_POOL, **WAIT}, ["node_pool"]),
    mutates=True, idempotent=True, lease=NODE_POOL_LEASE,
    description="Roll back a GKE node pool's failed or aborted upgrade to its previous version, and wait for it.",
)
async def rollback_node_pool_upgrade(inp: ActionInput) -> dict[str, Any]:
    """A repeated attempt waits for the operation its previous attempt started (heartbeat details) rather than
    ask again: GKE refuses a rollback when no failed upgrade is left to roll back."""
    p = inp.params
    ref = PoolRef.of(p)
    before = pool_record(await read_pool(ref, p["api_timeout"]))
    record = {"node_pool": ref.node_pool, "version_before": before["version"], "status_before": before["status"],
              "dry_run": inp.dry_run}
    if inp.dry_run:
        return {**record, "would": f"roll back the upgrade of {ref.describe()} (now at {before['version']})"}

    async def start() -> Any:
        return await call("rollback_node_pool_upgrade", {"name": ref.pool_name}, what=ref.describe(),
                          permission=UPDATE_CLUSTER, timeout_s=p["api_timeout"])

    changed = await change_pool(ref, p, start)
    after = pool_record(await read_pool(ref, p["api_timeout"]))
    return {**record, **changed, "version": after["version"], "status": after["status"]}
