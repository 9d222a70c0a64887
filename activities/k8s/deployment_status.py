"""`k8s.deployment_status`: a Deployment's replicas and rollout state, as `kubectl rollout status` sees them."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.k8s.access import rule
from activities.k8s.api import Target, must
from activities.k8s.changes import revision_of
from activities.k8s.fields import selector_string
from activities.k8s.health import deployment_summary, replica_mismatch
from activities.k8s.schemas import NAME, NAMESPACE, k8s_params


@action(
    "k8s.deployment_status",
    kube_access=(rule("get deployments.apps"),),
    params=k8s_params({"namespace": NAMESPACE, "deployment": NAME}, ["namespace", "deployment"]),
    description="Desired vs available replicas and rollout state (complete/progressing/stalled/paused).",
)
async def deployment_status(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    deployment = await must(p, Target("get", "deployments.apps", p["namespace"], p["deployment"]), "apps",
                            "read_namespaced_deployment", p["deployment"], p["namespace"])
    summary = deployment_summary(deployment)
    mismatch = replica_mismatch(deployment)
    return {**summary, "revision": revision_of(deployment), "mismatch": mismatch,
            "selector": selector_string(deployment["spec"].get("selector")),
            "healthy": summary["rollout"] == "complete" and mismatch is None}
