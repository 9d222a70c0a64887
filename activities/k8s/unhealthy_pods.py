"""`k8s.unhealthy_pods`: what an on-call engineer looks for first in `kubectl get pods`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from activities.base import ActionInput, action
from activities.k8s.access import rule
from activities.k8s.api import Target, duration_param, must
from activities.k8s.health import summarize_pod
from activities.k8s.schemas import MAX_PODS_REPORTED, NAMESPACE, SELECTOR, k8s_params


@action(
    "k8s.unhealthy_pods",
    kube_access=(rule("list pods"),),
    params=k8s_params({
        "namespace": NAMESPACE, "selector": {**SELECTOR, "default": ""},
        "restart_threshold": {"type": "integer", "minimum": 0, "default": 3,
                              "description": "a pod restarted more than this many times is unhealthy"},
        "pending_grace": {"type": ["string", "number"], "default": "1m",
                          "description": "a Pending pod younger than this is still starting"},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PODS_REPORTED, "default": 50,
                  "description": "report at most this many unhealthy pods (counts cover all)"},
    }, ["namespace"]),
    description="Pods in CrashLoopBackOff, OOMKilled, ImagePullBackOff, Pending, not Ready or restarting too often.",
)
async def unhealthy_pods(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    selector = p["selector"]
    listed = await must(p, Target("list", "pods", p["namespace"]), "core", "list_namespaced_pod", p["namespace"],
                        label_selector=selector or None)
    now = datetime.now(UTC)
    grace = duration_param(p, "pending_grace")
    summaries = [summarize_pod(pod, restart_threshold=p["restart_threshold"], now=now, pending_grace_s=grace)
                 for pod in listed.get("items", [])]
    unhealthy = [s for s in summaries if s["problems"]]
    by_reason: dict[str, int] = {}
    for pod in unhealthy:
        for reason in {problem["reason"] for problem in pod["problems"]}:
            by_reason[reason] = by_reason.get(reason, 0) + 1
    unhealthy.sort(key=lambda s: (-s["restarts"], s["name"]))
    # The headline (most specific) problem of each pod decides; "restarted a lot" is a symptom of CrashLoopBackOff.
    headlines: dict[str, int] = {}
    for pod in unhealthy:
        headlines[pod["problems"][0]["reason"]] = headlines.get(pod["problems"][0]["reason"], 0) + 1
    top = max(headlines, key=lambda r: (headlines[r], r)) if headlines else None
    reported = unhealthy[: p["limit"]]
    return {"namespace": p["namespace"], "selector": selector, "total": len(summaries),
            "unhealthy_count": len(unhealthy), "healthy": not unhealthy, "by_reason": by_reason,
            "top_reason": top, "unhealthy": reported, "names": [s["name"] for s in reported]}
