"""Read-only Kubernetes diagnosis: what an on-call engineer runs first with kubectl get/describe/logs/top."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from activities.base import ActionInput, action
from activities.k8s.api import CONNECTION, NAME, NAMESPACE, SELECTOR, Target, must
from activities.k8s.health import deployment_summary, replica_mismatch, summarize_pod
from incidentctl.dsl.durations import parse_duration

MAX_LOG_BYTES = 256 * 1024
MAX_LOG_LINES = 1000
MAX_PODS_REPORTED = 200


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": {**properties, **CONNECTION}, "required": required,
            "additionalProperties": False}


@action(
    "k8s.deployment_status",
    params=_schema({"namespace": NAMESPACE, "deployment": NAME}, ["namespace", "deployment"]),
    description="Desired vs available replicas and rollout state (complete/progressing/stalled/paused).",
)
async def deployment_status(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    deployment = await must(p, Target("get", "deployments.apps", p["namespace"], p["deployment"]), "apps",
                            "read_namespaced_deployment", p["deployment"], p["namespace"])
    summary = deployment_summary(deployment)
    revision = deployment["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision")
    return {**summary, "revision": int(revision) if revision else None, "mismatch": replica_mismatch(deployment),
            "healthy": summary["rollout"] == "complete" and replica_mismatch(deployment) is None}


@action(
    "k8s.unhealthy_pods",
    params=_schema({
        "namespace": NAMESPACE, "selector": SELECTOR,
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
    selector = p.get("selector", "")
    listed = await must(p, Target("list", "pods", p["namespace"]), "core", "list_namespaced_pod", p["namespace"],
                        label_selector=selector or None)
    now = datetime.now(UTC)
    grace = parse_duration(p.get("pending_grace", "1m"))
    summaries = [summarize_pod(pod, restart_threshold=p.get("restart_threshold", 3), now=now, pending_grace_s=grace)
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
    return {"namespace": p["namespace"], "selector": selector, "total": len(summaries),
            "unhealthy_count": len(unhealthy), "healthy": not unhealthy, "by_reason": by_reason,
            "top_reason": top, "unhealthy": unhealthy[: p.get("limit", 50)],
            "names": [s["name"] for s in unhealthy[: p.get("limit", 50)]]}
