"""`k8s.uncordon`: let the scheduler place pods on a node again (undoes `k8s.cordon`)."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.k8s.access import rule
from activities.k8s.nodes import set_cordoned
from activities.k8s.schemas import NAME, NODE_LEASE, k8s_params


@action("k8s.uncordon", params=k8s_params({"node": NAME}, ["node"]), mutates=True, idempotent=True,
        kube_access=(rule("get,patch nodes", cluster_wide=True),),
        lease=NODE_LEASE, description="kubectl uncordon: let the scheduler place new pods on a node again.")
async def uncordon(inp: ActionInput) -> dict[str, Any]:
    return await set_cordoned(inp, False)
