"""`k8s.delete_pods`: delete (unhealthy) pods so their controller replaces them, within a hard bound.

The bound is checked against everything the selector picks before the first delete: more candidates than
`max_pods` deletes nothing, because a too-broad selector is a mistake in the runbook, not a reason to delete the
first few pods.

Idempotent under Temporal retries: the victims (name and uid) are decided once, by the first attempt, and sent as
heartbeat details before the first delete; a retry (the worker died mid-way) reads them back and deletes only
those still there, never the replacements their controller has created since. A retry that finds no victims (the
worker died before its heartbeat reached the server) picks only among pods created before the step was first
scheduled, which no replacement is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.heartbeats import heartbeat, previous_details
from activities.k8s.access import rule
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
from activities.k8s.fields import parse_time
from activities.k8s.health import summarize_pod
from activities.k8s.schemas import NAME, NAMESPACE, PODS_LEASE, SELECTOR, k8s_params

HARD_MAX_DELETE_PODS = 20
# A replacement pod that is still Pending this young is starting, not unhealthy; without this grace a retried
# delete_pods would delete the replacement of the pod it has just deleted.
PENDING_GRACE_S = 60.0


def victims_of(details: Any) -> list[dict[str, str]] | None:
    """The victims an earlier attempt decided on, from its heartbeat details (None: it decided none)."""
    first = details[0] if details else None
    victims = first.get("victims") if isinstance(first, dict) else None
    if not isinstance(victims, list) or not all(isinstance(v, dict) and "name" in v for v in victims):
        return None
    return victims


def still_there(pods: list[dict[str, Any]], victims: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The pods among `pods` that are the victims decided earlier (same name and uid) and not yet terminating."""
    wanted = {(v["name"], v.get("uid")) for v in victims}
    return [pod for pod in pods if (pod["metadata"]["name"], pod["metadata"].get("uid")) in wanted
            and not pod["metadata"].get("deletionTimestamp")]


def older_than(pods: list[dict[str, Any]], moment: datetime) -> list[dict[str, Any]]:
    """The pods created before `moment` (a pod without a creation time is left out: it cannot be proved old)."""
    return [pod for pod in pods if (created := parse_time(pod["metadata"].get("creationTimestamp"))) is not None
            and created < moment]


def _retry_info() -> tuple[int, datetime | None]:
    """(attempt, when the step's activity was first scheduled); (1, None) outside Temporal."""
    from temporalio import activity  # here, not at module import: building the action catalog must not load it

    if not activity.in_activity():
        return 1, None
    info = activity.info()
    return info.attempt, info.scheduled_time


@action(
    "k8s.delete_pods",
    kube_access=(rule("list,delete pods"),),
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
    decided = victims_of(previous_details())
    if decided is not None:
        # A retry: the first attempt decided (and checked the bound); delete what is left of its victims only.
        return await _delete(p, still_there(pods, decided), [v["name"] for v in decided], summaries, dry_run)
    candidates = [pod for pod, summary in zip(pods, summaries, strict=True)
                  # Already terminating: deleting it again achieves nothing and would be counted against the bound.
                  if not pod["metadata"].get("deletionTimestamp")
                  and (summary["problems"] or not only_unhealthy)]
    attempt, scheduled = _retry_info()
    if attempt > 1 and scheduled is not None:
        candidates = older_than(candidates, scheduled)
    where = f" on node {node}" if node else ""
    if len(candidates) > bound:
        kind = "unhealthy pods" if only_unhealthy else "pods"
        raise ActionError(
            f"{len(candidates)} {kind} match {selector} in {namespace}{where}; max_pods is {bound}: refusing to "
            "delete any", {"pods": [pod["metadata"]["name"] for pod in candidates]},
            type="RefusedByBound", non_retryable=True)
    if not dry_run:
        heartbeat({"victims": [{"name": pod["metadata"]["name"], "uid": pod["metadata"].get("uid")}
                               for pod in candidates]})
    return await _delete(p, candidates, [pod["metadata"]["name"] for pod in candidates], summaries, dry_run)


async def _delete(p: dict[str, Any], pods: list[dict[str, Any]], victims: list[str], summaries: list[dict[str, Any]],
                  dry_run: bool) -> dict[str, Any]:
    """Delete `pods`; the output names every victim of the step (`victims`, some deleted by an earlier attempt)."""
    namespace = p["namespace"]
    for pod in pods:
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
    return {"namespace": namespace, "selector": p["selector"].strip(), "node": p.get("node"),
            "only_unhealthy": p["only_unhealthy"], "matched": len(victims), "deleted": victims, "before": summaries,
            "changed": bool(victims), "dry_run": dry_run}
