"""Writing an action's RBAC needs (`kube_access=`) compactly: `rule("get,patch deployments.apps")`."""

from __future__ import annotations

from activities.base import KubeAccess


def rule(verbs_and_resource: str, *, cluster_wide: bool = False, namespace: str = "") -> KubeAccess:
    """`"get,list pods"` -> KubeAccess(("get", "list"), "pods")."""
    verbs, resource = verbs_and_resource.split()
    return KubeAccess(tuple(verbs.split(",")), resource, cluster_wide, namespace)
