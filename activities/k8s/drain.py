"""`k8s.drain`: cordon a node, then evict its pods through the eviction API, so PodDisruptionBudgets are respected.

Drain is bounded (at most `max_pods` evictions, never more than HARD_MAX_DRAIN_PODS) and checks that bound before
it cordons, so a refusal leaves the node as it was. Evictions blocked by a budget (429) are retried until the
deadline; what is still blocked then is named, with the budget's own explanation, in a non-retryable failure.
"""

from __future__ import annotations

import asyncio
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.access import rule
from activities.k8s.api import KubeError, Target, call, dry_run_kwargs, duration_param, fail, heartbeat, must, refuse
from activities.k8s.fields import controller_ref
from activities.k8s.nodes import read_node, set_unschedulable, unschedulable
from activities.k8s.schemas import NAME, NODE_LEASE, k8s_params
from incidentctl.dsl.durations import DURATION_PATTERN, format_duration

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
HARD_MAX_DRAIN_PODS = 100
MAX_DRAIN_TIMEOUT_S = 3600.0
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 10.0


def _key(pod: dict[str, Any]) -> str:
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


def _skip_reason(pod: dict[str, Any], ignore_daemonsets: bool) -> str | None:
    """Why drain leaves this pod alone, or None to evict it. DaemonSet pods are left only when allowed to
    (the caller refuses otherwise, as kubectl does): their controller would put them straight back."""
    if MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {}):
        return "mirror pod (a static pod managed by the kubelet; the API cannot remove it)"
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        return f"terminated ({phase})"
    owner = controller_ref(pod)
    if ignore_daemonsets and owner is not None and owner.get("kind") == "DaemonSet":
        return f"DaemonSet-managed ({owner.get('name')})"
    return None


async def _pods_on(p: dict[str, Any]) -> list[dict[str, Any]]:
    listed = await must(p, Target("list", "pods"), "core", "list_pod_for_all_namespaces",
                        field_selector=f"spec.nodeName={p['node']}")
    return sorted(listed.get("items", []), key=_key)


def _plan(p: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(pods to evict, skipped pods with reasons); refuses, before anything is changed, what drain must not do."""
    ignore_daemonsets = p["ignore_daemonsets"]
    evict, skipped = [], []
    for pod in pods:
        reason = _skip_reason(pod, ignore_daemonsets)
        if reason is None:
            evict.append(pod)
        else:
            skipped.append({"pod": _key(pod), "reason": reason})
    daemons = [_key(pod) for pod in evict if (controller_ref(pod) or {}).get("kind") == "DaemonSet"]
    if daemons:
        raise refuse(f"node {p['node']} runs {len(daemons)} DaemonSet-managed pod(s) ({', '.join(daemons[:5])}) and "
                      "ignore_daemonsets is false: refusing to drain", "DrainRefused")
    bare = [_key(pod) for pod in evict if controller_ref(pod) is None]
    if bare and not p["force"]:
        # As kubectl: nothing would recreate these pods, so evicting them loses them for good.
        raise refuse(f"node {p['node']} runs {len(bare)} pod(s) without a controller ({', '.join(bare[:5])}); "
                      "nothing would recreate them: refusing to drain (force: true evicts them anyway)",
                      "DrainRefused")
    bound = min(p["max_pods"], HARD_MAX_DRAIN_PODS)
    if len(evict) > bound:
        raise refuse(f"node {p['node']} has {len(evict)} pods to evict; max_pods is {bound}: refusing to drain")
    return evict, skipped


def _budget_reason(exc: KubeError) -> str:
    """The PodDisruptionBudget's own sentence ('The disruption budget cart needs 2 healthy pods and has 2
    currently') when the API server gives one, else its message."""
    details = exc.body.get("details") if isinstance(exc.body, dict) else None
    causes = (details or {}).get("causes") or []
    messages = [c.get("message") for c in causes if isinstance(c, dict) and c.get("message")]
    return "; ".join(messages) or str(exc)


async def _evict(p: dict[str, Any], pod: dict[str, Any], dry_run: bool) -> str | None:
    """None once the pod is evicted (or already gone); the budget's reason when a PodDisruptionBudget blocks it."""
    meta = pod["metadata"]
    namespace, name = meta.get("namespace", ""), meta["name"]
    delete_options: dict[str, Any] = {"preconditions": {"uid": meta.get("uid")}} if meta.get("uid") else {}
    if dry_run:
        delete_options["dryRun"] = ["All"]
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": name, "namespace": namespace}}
    if delete_options:
        body["deleteOptions"] = delete_options
    target = Target("create", "pods/eviction", namespace, name)
    try:
        await call(p, target, "core", "create_namespaced_pod_eviction", name, namespace, body,
                   **dry_run_kwargs(dry_run))
    except KubeError as exc:
        # 404: gone already. 409: the uid precondition failed, so the pod we listed is gone and a namesake replaced
        # it (StatefulSet); either way the pod this drain is about has left the node.
        if exc.status in (404, 409):
            return None
        if exc.status == 429:
            return _budget_reason(exc)
        raise fail(exc, target) from None
    return None


def _timeout(p: dict[str, Any]) -> float:
    seconds = duration_param(p, "timeout")
    if seconds > MAX_DRAIN_TIMEOUT_S:
        raise refuse(f"k8s.drain: timeout {p['timeout']} is longer than the maximum of "
                      f"{format_duration(MAX_DRAIN_TIMEOUT_S)}", "InvalidParams")
    return seconds


@action(
    "k8s.drain",
    kube_access=(rule("get,patch nodes", cluster_wide=True), rule("list pods", cluster_wide=True),
                 rule("create pods/eviction", cluster_wide=True)),
    params=k8s_params({
        "node": NAME,
        "timeout": {"type": ["string", "number"], "pattern": DURATION_PATTERN, "minimum": 0,
                    "maximum": MAX_DRAIN_TIMEOUT_S, "default": "5m",
                    "description": "how long to keep retrying evictions a PodDisruptionBudget blocks (at most 1h)"},
        "ignore_daemonsets": {"type": "boolean", "default": True,
                              "description": "leave DaemonSet pods in place (false: refuse to drain a node with any)"},
        "force": {"type": "boolean", "default": False,
                  "description": "also evict pods no controller would recreate (kubectl drain --force)"},
        "max_pods": {"type": "integer", "minimum": 1, "maximum": HARD_MAX_DRAIN_PODS, "default": 30,
                     "description": "refuse to drain a node with more pods to evict than this"},
    }, ["node"]),
    mutates=True, idempotent=True, lease=NODE_LEASE,
    description="kubectl drain: cordon a node, then evict its pods, respecting PodDisruptionBudgets.",
)
async def drain(inp: ActionInput) -> dict[str, Any]:
    """Output `cordoned` is whether the node is (in a dry run: would be) cordoned when drain returns.

    Drain does not wait for evicted pods to finish terminating: on a NotReady node (the usual reason to drain)
    the kubelet never confirms, so such a wait could only time out. `after.pods` shows what is still listed.
    """
    p, dry_run = inp.params, inp.dry_run
    timeout = _timeout(p)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    node = await read_node(p)
    pods_before = await _pods_on(p)
    _plan(p, pods_before)  # refuse before cordoning, so a refusal changes nothing
    cordoned_node = await set_unschedulable(p, node, True, dry_run)
    # Listed again after the cordon: pods scheduled in between are included, and nothing new can arrive now.
    to_evict, skipped = _plan(p, await _pods_on(p)) if not dry_run else _plan(p, pods_before)

    pending = {_key(pod): pod for pod in to_evict}
    evicted: list[str] = []
    blocked: dict[str, str] = {}
    delay = FIRST_RETRY_S
    while True:
        for key, pod in list(pending.items()):
            reason = await _evict(p, pod, dry_run)
            if reason is None:
                evicted.append(key)
                del pending[key]
                blocked.pop(key, None)
            else:
                blocked[key] = reason
        # A dry run changes no budget, so waiting could not unblock anything: report what would be blocked.
        if not pending or dry_run:
            break
        remaining = deadline - loop.time()
        if remaining <= 0:
            listed = "; ".join(f"{key} ({blocked[key]})" for key in sorted(blocked))
            count = f"{len(blocked)} pod" + ("" if len(blocked) == 1 else "s")
            raise ActionError(
                f"drain of {p['node']} incomplete after {format_duration(timeout)}: {count} blocked by a "
                f"PodDisruptionBudget: {listed}",
                {"node": p["node"], "evicted": evicted, "blocked": [{"pod": k, "reason": v}
                                                                    for k, v in sorted(blocked.items())]},
                type="DrainIncomplete", non_retryable=True)
        heartbeat(f"drain {p['node']}: {len(evicted)} evicted, {len(blocked)} blocked by PodDisruptionBudgets")
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_RETRY_S)

    if dry_run:
        after_unschedulable = unschedulable(cordoned_node)
        after_pods = [key for key in map(_key, pods_before) if key not in evicted]
    else:
        after_unschedulable = unschedulable(await read_node(p))
        after_pods = [_key(pod) for pod in await _pods_on(p)]
    before_state = {"unschedulable": unschedulable(node), "pods": [_key(pod) for pod in pods_before]}
    after_state = {"unschedulable": after_unschedulable, "pods": after_pods}
    return {"node": p["node"], "cordoned": after_unschedulable, "evicted": evicted, "skipped": skipped,
            "blocked": [{"pod": k, "reason": v} for k, v in sorted(blocked.items())],
            "before": before_state, "after": after_state,
            "changed": before_state["unschedulable"] != after_unschedulable or bool(evicted), "dry_run": dry_run}
