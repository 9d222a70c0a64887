"""`k8s.cordon`: mark a node unschedulable; the pods on it keep running."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.k8s.access import rule
from activities.k8s.nodes import set_cordoned
from activities.k8s.schemas import NAME, NODE_LEASE, k8s_params


@action("k8s.cordon", params=k8s_params({"node": NAME}, ["node"]), mutates=True, idempotent=True,
        kube_access=(rule("get,patch nodes", cluster_wide=True),),
        lease=NODE_LEASE, description="kubectl cordon: mark a node unschedulable (pods on it keep running).")
async def cordon(inp: ActionInput) -> dict[str, Any]:
    return await set_cordoned(inp, True)
