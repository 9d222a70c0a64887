"""`k8s.wait_*`: wait until a rollout completes, pods are Ready, or nothing restarts for a while.

Each polls with heartbeats and has a deadline. The deadline is absolute across retries: the first attempt's
start is carried in heartbeat details, so a worker that dies and comes back does not restart the clock.
On the deadline the step fails (non-retryable `VerificationFailed`) with what was last seen, so the runbook's
`on_failure` (typically rollback) takes over.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.heartbeats import previous_details
from activities.k8s.access import rule
from activities.k8s.api import Target, duration_param, heartbeat, must
from activities.k8s.health import deployment_summary, summarize_pod
from activities.k8s.schemas import DURATION, NAME, NAMESPACE, SELECTOR, k8s_params
from incidentctl.dsl.durations import format_duration

MAX_WAIT_S = 3600.0
# Every wait takes these: how long to wait in all (at most MAX_WAIT_S) and how often to look.
WAITING = {"timeout": {**DURATION, "default": "5m"}, "interval": {**DURATION, "default": "2s"}}


class _Clock:
    """Deadline and elapsed time that survive activity retries (via heartbeat details)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.timeout = min(duration_param(params, "timeout"), MAX_WAIT_S)
        self.interval = max(duration_param(params, "interval"), 0.2)
        self.started = time.time()
        details = previous_details()
        if details and isinstance(details[0], dict) and "started" in details[0]:
            self.started = float(details[0]["started"])

    def elapsed(self) -> float:
        return time.time() - self.started

    def expired(self) -> bool:
        return self.elapsed() >= self.timeout

    async def tick(self, seen: dict[str, Any]) -> None:
        heartbeat({"started": self.started, "seen": seen})
        await asyncio.sleep(self.interval)


def _failed(message: str, seen: dict[str, Any]) -> ActionError:
    return ActionError(message, seen, type="VerificationFailed", non_retryable=True)


@action(
    "k8s.wait_rollout",
    kube_access=(rule("get deployments.apps"),),
    params=k8s_params({"namespace": NAMESPACE, "deployment": NAME, **WAITING}, ["namespace", "deployment"]),
    description="kubectl rollout status: wait until every replica runs the current template and is available.",
)
async def wait_rollout(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    clock = _Clock(p)
    target = Target("get", "deployments.apps", p["namespace"], p["deployment"])
    while True:
        summary = deployment_summary(await must(p, target, "apps", "read_namespaced_deployment", p["deployment"],
                                                p["namespace"]))
        if summary["rollout"] == "complete":
            return {"ok": True, "waited_s": round(clock.elapsed(), 1), "status": summary}
        if summary["rollout"] == "stalled":
            raise _failed(f"rollout of {p['namespace']}/{p['deployment']} is stalled: {summary['reason']}", summary)
        if clock.expired():
            raise _failed(f"rollout of {p['namespace']}/{p['deployment']} not complete after "
                          f"{format_duration(clock.timeout)}: {summary['reason']}", summary)
        await clock.tick(summary)


async def _pods(p: dict[str, Any]) -> list[dict[str, Any]]:
    listed = await must(p, Target("list", "pods", p["namespace"]), "core", "list_namespaced_pod", p["namespace"],
                        label_selector=p["selector"])
    return [pod for pod in listed.get("items", []) if not pod["metadata"].get("deletionTimestamp")]


@action(
    "k8s.wait_pods_ready",
    kube_access=(rule("list pods"),),
    params=k8s_params({"namespace": NAMESPACE, "selector": SELECTOR,
                       "min_ready": {"type": "integer", "minimum": 1, "default": 1}, **WAITING},
                      ["namespace", "selector"]),
    description="Wait until every pod matching the selector is Ready (and at least min_ready exist).",
)
async def wait_pods_ready(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    clock = _Clock(p)
    while True:
        pods = [summarize_pod(pod) for pod in await _pods(p)]
        ready = sum(s["ready"] for s in pods)
        seen = {"ready": ready, "total": len(pods),
                "not_ready": [s["name"] for s in pods if not s["ready"]][:20]}
        if pods and ready == len(pods) and ready >= p["min_ready"]:
            return {"ok": True, "waited_s": round(clock.elapsed(), 1), **seen}
        if clock.expired():
            raise _failed(f"{ready} of {len(pods)} pods matching {p['selector']} in {p['namespace']} Ready after "
                          f"{format_duration(clock.timeout)} (want all, at least {p['min_ready']})", seen)
        await clock.tick(seen)


@action(
    "k8s.wait_stable",
    kube_access=(rule("list pods"),),
    params=k8s_params({"namespace": NAMESPACE, "selector": SELECTOR, "for": DURATION, **WAITING},
                      ["namespace", "selector", "for"]),
    description="Wait until the selected pods are all Ready and none has restarted for a whole `for` window.",
)
async def wait_stable(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    clock = _Clock(p)
    window = duration_param(p, "for")
    if window >= clock.timeout:
        raise ActionError(f"for ({format_duration(window)}) must be shorter than timeout "
                          f"({format_duration(clock.timeout)})", type="InvalidParams", non_retryable=True)
    restarts: dict[str, int] = {}
    stable_since: float | None = None
    restarts_seen = 0
    while True:
        pods = {pod["metadata"]["uid"]: summarize_pod(pod) for pod in await _pods(p)}
        counts = {uid: summary["restarts"] for uid, summary in pods.items()}
        all_ready = bool(pods) and all(summary["ready"] for summary in pods.values())
        restarted = [uid for uid, n in counts.items() if n > restarts.get(uid, n)]
        restarts_seen += sum(counts[uid] - restarts[uid] for uid in restarted)
        restarts = counts
        now = time.time()
        if restarted or not all_ready:
            stable_since = None
        elif stable_since is None:
            stable_since = now
        stable_for = now - stable_since if stable_since is not None else 0.0
        seen = {"pods": len(pods), "all_ready": all_ready, "stable_for_s": round(stable_for, 1),
                "restarts_seen": restarts_seen}
        if stable_for >= window:
            return {"ok": True, "waited_s": round(clock.elapsed(), 1), **seen}
        if clock.expired():
            raise _failed(f"pods matching {p['selector']} in {p['namespace']} were not stable for "
                          f"{format_duration(window)} within {format_duration(clock.timeout)} "
                          f"({restarts_seen} restarts seen, all ready: {all_ready})", seen)
        await clock.tick(seen)
