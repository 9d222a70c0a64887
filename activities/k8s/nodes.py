"""Reading a node and setting spec.unschedulable: what cordon, uncordon and drain share."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput
from activities.k8s.api import MERGE_PATCH, Target, dry_run_kwargs, must


async def read_node(p: dict[str, Any]) -> dict[str, Any]:
    return await must(p, Target("get", "nodes", name=p["node"]), "core", "read_node", p["node"])


def unschedulable(node: dict[str, Any]) -> bool:
    return bool((node.get("spec") or {}).get("unschedulable"))


async def set_unschedulable(p: dict[str, Any], node: dict[str, Any], wanted: bool,
                            dry_run: bool) -> dict[str, Any]:
    """The node after making spec.unschedulable `wanted` (unchanged, without a write, when it already is)."""
    if unschedulable(node) == wanted:
        return node
    # null removes the field, which is how the API server itself represents "schedulable" (omitempty).
    body = {"spec": {"unschedulable": True if wanted else None}}
    return await must(p, Target("patch", "nodes", name=p["node"]), "core", "patch_node", p["node"], body,
                      _content_type=MERGE_PATCH, **dry_run_kwargs(dry_run))


async def set_cordoned(inp: ActionInput, wanted: bool) -> dict[str, Any]:
    """Cordon (`wanted` true) or uncordon the node `inp.params["node"]`; the output of both actions."""
    p = inp.params
    node = await read_node(p)
    after = await set_unschedulable(p, node, wanted, inp.dry_run)
    before_state, after_state = unschedulable(node), unschedulable(after)
    return {"node": p["node"], "before": {"unschedulable": before_state}, "after": {"unschedulable": after_state},
            "changed": before_state != after_state, "dry_run": inp.dry_run}
