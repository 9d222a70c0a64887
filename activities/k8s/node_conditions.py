"""`k8s.node_conditions`: readiness, pressure conditions and cordons of nodes."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.access import rule
from activities.k8s.api import Target, must
from activities.k8s.health import node_summary
from activities.k8s.schemas import NAME, SELECTOR, k8s_params

# node_summary's problems are readiness, cordon and the pressure conditions; the rest are pressures.
NOT_PRESSURE = {"NotReady", "ReadyUnknown", "Unschedulable"}


@action(
    "k8s.node_conditions",
    kube_access=(rule("list nodes", cluster_wide=True),),
    params=k8s_params({
        "nodes": {"type": "array", "items": NAME, "minItems": 1, "uniqueItems": True,
                  "description": "node names (default: all nodes)"},
        "selector": {**SELECTOR, "default": "", "description": "node label selector, e.g. node-pool=web"},
    }),
    description="Readiness, pressure conditions and cordons of nodes; healthy means all Ready with no pressure.",
)
async def node_conditions(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    listed = await must(p, Target("list", "nodes"), "core", "list_node", label_selector=p["selector"] or None)
    nodes = [n for n in listed.get("items") or [] if isinstance(n, dict)]
    if "nodes" in p:
        by_name = {(n.get("metadata") or {}).get("name"): n for n in nodes}
        missing = [name for name in p["nodes"] if name not in by_name]
        if missing:
            scope = f' matching selector "{p["selector"]}"' if p["selector"] else ""
            raise ActionError(f"nodes {', '.join(missing)} not found{scope}", {"status": 404},
                              type="KubeNotFound", non_retryable=True)
        nodes = [by_name[name] for name in p["nodes"]]
    if not nodes:
        # "All of no nodes are healthy" would let a runbook carry on against a node pool that does not exist.
        raise ActionError(f'no nodes match selector "{p["selector"]}"', {"status": 404},
                          type="KubeNotFound", non_retryable=True)
    summaries = [node_summary(n) for n in nodes]
    not_ready = [s["name"] for s in summaries if s["ready"] is not True]
    pressure = [s["name"] for s in summaries if set(s["problems"]) - NOT_PRESSURE]
    cordoned = [s["name"] for s in summaries if s["unschedulable"]]
    # A cordon is usually deliberate (maintenance), so it is reported but does not make the nodes unhealthy.
    return {"nodes": summaries, "not_ready": not_ready, "pressure": pressure, "cordoned": cordoned,
            "healthy": not not_ready and not pressure}
