"""`k8s.delete_pods`: delete (unhealthy) pods so their controller replaces them, within a hard bound.

The bound is checked against everything the selector picks before the first delete: more candidates than
`max_pods` deletes nothing, because a too-broad selector is a mistake in the runbook, not a reason to delete the
first few pods.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.api import (
    KubeError,
    Target,
    call,
    dry_run_kwargs,
    fail,
    must,
    namespace_exists,
    namespace_missing,
)
from activities.k8s.health import summarize_pod
from activities.k8s.schemas import NAME, NAMESPACE, PODS_LEASE, SELECTOR, k8s_params

HARD_MAX_DELETE_PODS = 20
# A replacement pod that is still Pending this young is starting, not unhealthy; without this grace a retried
# delete_pods would delete the replacement of the pod it has just deleted.
PENDING_GRACE_S = 60.0


@action(
    "k8s.delete_pods",
    params=k8s_params({
        "namespace": NAMESPACE,
        "selector": {**SELECTOR, "minLength": 1, "pattern": r"\S"},
        "node": {**NAME, "description": "only pods on this node"},
        "only_unhealthy": {"type": "boolean", "default": True,
                           "description": "only pods with a problem (CrashLoopBackOff, not Ready, Pending, ...)"},
        "max_pods": {"type": "integer", "minimum": 1, "maximum": HARD_MAX_DELETE_PODS, "default": 1,
                     "description": "refuse (deleting none) when more pods than this would be deleted"},
    }, ["namespace", "selector"]),
    mutates=True, idempotent=True, lease=PODS_LEASE,
    description="Delete pods matching a selector (by default only unhealthy ones) so their controller recreates "
                f"them; at most max_pods (never more than {HARD_MAX_DELETE_PODS}).",
)
async def delete_pods(inp: ActionInput) -> dict[str, Any]:
    """`before` summarises every pod the selector (and node) picked; `matched` counts those eligible for deletion
    (all of them, or only the unhealthy ones), which is what max_pods bounds."""
    p, dry_run = inp.params, inp.dry_run
    namespace, selector = p["namespace"], p["selector"].strip()
    # The schema already says this; a templated selector that renders blank must still never mean "all pods".
    if not selector:
        raise ActionError("k8s.delete_pods: an empty selector would match every pod; refusing",
                          type="InvalidParams", non_retryable=True)
    node = p.get("node")
    only_unhealthy = p["only_unhealthy"]
    bound = min(p["max_pods"], HARD_MAX_DELETE_PODS)
    listed = await must(p, Target("list", "pods", namespace), "core", "list_namespaced_pod", namespace,
                        label_selector=selector, field_selector=f"spec.nodeName={node}" if node else None)
    pods = sorted(listed.get("items", []), key=lambda pod: pod["metadata"]["name"])
    if not pods and not await namespace_exists(p, namespace):
        # Listing in a missing namespace answers an empty list; saying "nothing to do" would hide a typo.
        raise namespace_missing(namespace, f"pods {selector}")
    now = datetime.now(UTC)
    summaries = [summarize_pod(pod, now=now, pending_grace_s=PENDING_GRACE_S) for pod in pods]
    candidates = [pod for pod, summary in zip(pods, summaries, strict=True)
                  # Already terminating: deleting it again achieves nothing and would be counted against the bound.
                  if not pod["metadata"].get("deletionTimestamp")
                  and (summary["problems"] or not only_unhealthy)]
    where = f" on node {node}" if node else ""
    if len(candidates) > bound:
        kind = "unhealthy pods" if only_unhealthy else "pods"
        raise ActionError(
            f"{len(candidates)} {kind} match {selector} in {namespace}{where}; max_pods is {bound}: refusing to "
            "delete any", {"pods": [pod["metadata"]["name"] for pod in candidates]},
            type="RefusedByBound", non_retryable=True)

    deleted: list[str] = []
    for pod in candidates:
        name, uid = pod["metadata"]["name"], pod["metadata"].get("uid")
        target = Target("delete", "pods", namespace, name)
        # The uid precondition makes sure a namesake created meanwhile (StatefulSet) is not deleted instead.
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            await call(p, target, "core", "delete_namespaced_pod", name, namespace, body=body,
                       **dry_run_kwargs(dry_run))
        except KubeError as exc:
            # 404/409: the pod we picked is already gone, which is what this action is for.
            if exc.status not in (404, 409):
                raise fail(exc, target) from None
        deleted.append(name)
    return {"namespace": namespace, "selector": selector, "node": node, "only_unhealthy": only_unhealthy,
            "matched": len(candidates), "deleted": deleted, "before": summaries, "changed": bool(deleted),
            "dry_run": dry_run}
