"""Reading and patching one Deployment, and the before/after record every Deployment remediation returns
(`k8s.rollout_*`, `k8s.scale`, `k8s.set_resources`)."""

from __future__ import annotations

from typing import Any

from activities.k8s.api import Target, dry_run_kwargs, must
from activities.k8s.changes import revision_of

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


async def read_deployment(p: dict[str, Any]) -> dict[str, Any]:
    return await must(p, Target("get", "deployments.apps", p["namespace"], p["deployment"]), "apps",
                      "read_namespaced_deployment", p["deployment"], p["namespace"])


async def patch_deployment(p: dict[str, Any], body: Any, content_type: str, dry_run: bool) -> dict[str, Any]:
    return await must(p, Target("patch", "deployments.apps", p["namespace"], p["deployment"]), "apps",
                      "patch_namespaced_deployment", p["deployment"], p["namespace"], body,
                      _content_type=content_type, **dry_run_kwargs(dry_run))


def state(deployment: dict[str, Any]) -> dict[str, Any]:
    """What a remediation may change: revision, replicas, images, resources, the restart stamp."""
    spec = deployment.get("spec", {})
    containers = spec.get("template", {}).get("spec", {}).get("containers", [])
    return {"revision": revision_of(deployment),
            "replicas": spec.get("replicas", 1),
            "images": {c["name"]: c.get("image") for c in containers},
            "resources": {c["name"]: c.get("resources", {}) for c in containers},
            "restarted_at": spec.get("template", {}).get("metadata", {}).get("annotations", {}).get(RESTARTED_AT)}


def change_record(p: dict[str, Any], before: dict[str, Any], after: dict[str, Any], dry_run: bool,
                  **extra: Any) -> dict[str, Any]:
    """The output of a Deployment remediation: its state before and after, and whether that changed."""
    return {"namespace": p["namespace"], "deployment": p["deployment"], "before": state(before),
            "after": state(after), "changed": state(before) != state(after), "dry_run": dry_run, **extra}
