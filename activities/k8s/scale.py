"""`k8s.scale`: set a Deployment's replicas, within bounds the runbook gives and one it cannot raise."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.k8s.access import rule
from activities.k8s.api import MERGE_PATCH, refuse
from activities.k8s.deployments import change_record, patch_deployment, read_deployment
from activities.k8s.schemas import DEPLOYMENT_LEASE, NAME, NAMESPACE, k8s_params

HARD_MAX_REPLICAS = 100


@action(
    "k8s.scale",
    kube_access=(rule("get,patch deployments.apps"),),
    params=k8s_params({
        "namespace": NAMESPACE, "deployment": NAME,
        "replicas": {"type": "integer", "minimum": 0},
        "min_replicas": {"type": "integer", "minimum": 0, "default": 0},
        "max_replicas": {"type": "integer", "minimum": 0, "maximum": HARD_MAX_REPLICAS, "default": 20},
    }, ["namespace", "deployment", "replicas"]),
    mutates=True, idempotent=True, lease=DEPLOYMENT_LEASE,
    description=f"Set a deployment's replicas within [min_replicas, max_replicas] (never above "
                f"{HARD_MAX_REPLICAS}).",
)
async def scale(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    low, high = p["min_replicas"], min(p["max_replicas"], HARD_MAX_REPLICAS)
    if not low <= p["replicas"] <= high:
        raise refuse(f"scaling {p['namespace']}/{p['deployment']} to {p['replicas']} replicas is outside the "
                     f"bounds [{low}, {high}]")
    before = await read_deployment(p)
    if before["spec"].get("replicas", 1) == p["replicas"]:
        return change_record(p, before, before, inp.dry_run)
    after = await patch_deployment(p, {"spec": {"replicas": p["replicas"]}}, MERGE_PATCH, inp.dry_run)
    return change_record(p, before, after, inp.dry_run)
