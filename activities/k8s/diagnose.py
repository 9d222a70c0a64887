"""Read-only Kubernetes diagnosis: what an on-call engineer runs first with kubectl get/describe/logs/top."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.base import ActionInput, action
from activities.k8s.api import (
    CONNECTION,
    NAME,
    NAMESPACE,
    SELECTOR,
    KubeError,
    Target,
    call,
    duration_param,
    fail,
    must,
)
from activities.k8s.changes import event_count, event_time, revision_of
from activities.k8s.fields import format_time, selector_string
from activities.k8s.health import (
    deployment_summary,
    format_bytes,
    node_summary,
    parse_quantity,
    pod_problems,
    replica_mismatch,
    summarize_pod,
)

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
    mismatch = replica_mismatch(deployment)
    return {**summary, "revision": revision_of(deployment), "mismatch": mismatch,
            "selector": selector_string(deployment["spec"].get("selector")),
            "healthy": summary["rollout"] == "complete" and mismatch is None}


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
    grace = duration_param(p, "pending_grace", "1m")
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


# -- k8s.pod_logs -------------------------------------------------------------------------------------------------

# What is fetched from the API server whatever max_bytes says: the server cuts a log from its *start*, so asking
# for exactly max_bytes would lose the newest lines (the panic); we fetch more and keep the end ourselves.
LOG_FETCH_BYTES = 4 * MAX_LOG_BYTES


def _pick_pod(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod most worth reading: most restarts, then one with problems, then the newest."""
    now = datetime.now(UTC)

    def key(pod: dict[str, Any]) -> tuple[int, bool, float, str]:
        summary = summarize_pod(pod, now=now)
        return summary["restarts"], bool(summary["problems"]), -(summary["age_s"] or 0.0), summary["name"] or ""

    return max(pods, key=key)


def _container_statuses(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status = pod.get("status") or {}
    return {cs["name"]: cs for key in ("initContainerStatuses", "containerStatuses")
            for cs in status.get(key) or [] if isinstance(cs, dict) and cs.get("name")}


def _pick_container(pod: dict[str, Any], wanted: str | None) -> str:
    spec = pod.get("spec") or {}
    containers = [c["name"] for c in spec.get("containers") or [] if c.get("name")]
    init_containers = [c["name"] for c in spec.get("initContainers") or [] if c.get("name")]
    name = pod["metadata"]["name"]
    if wanted is not None:
        if wanted not in containers + init_containers:
            raise ApplicationError(f'pod "{name}" has no container "{wanted}" (containers: '
                                   f"{', '.join(containers + init_containers) or 'none'})", type="InvalidParams",
                                   non_retryable=True)
        return wanted
    # pod_problems lists init containers first, which is also the order in which they break a pod.
    for problem in pod_problems(pod):
        if problem["container"] in containers + init_containers:
            return problem["container"]
    if not containers:
        raise ApplicationError(f'pod "{name}" has no containers', type="InvalidParams", non_retryable=True)
    return containers[0]


def _has_previous(status: dict[str, Any] | None) -> bool:
    if not status:
        return False
    restarts = status.get("restartCount")
    return (isinstance(restarts, int) and restarts > 0) or bool((status.get("lastState") or {}).get("terminated"))


def _keep_end(raw: bytes, max_bytes: int) -> tuple[bytes, bool]:
    """The newest `max_bytes` of a log, starting at a line boundary when one is available."""
    if len(raw) <= max_bytes:
        return raw, False
    kept = raw[-max_bytes:]
    if raw[-max_bytes - 1:-max_bytes] != b"\n":
        newline = kept.find(b"\n")
        # A single line longer than the budget: its end is better than nothing.
        if 0 <= newline < len(kept) - 1:
            kept = kept[newline + 1:]
    return kept, True


@action(
    "k8s.pod_logs",
    # "pod or selector" is checked in the action, not with oneOf: the compiler validates only the literal params,
    # so a templated selector would look absent to it.
    params=_schema({
        "namespace": NAMESPACE,
        "pod": {**NAME, "description": "pod name (or give selector)"},
        "selector": {**SELECTOR, "description": "label selector; the matching pod with the most restarts is read"},
        "container": {**NAME, "description": "default: the first container with a problem, else the first one"},
        "previous": {"enum": [True, False, "auto"], "default": "auto",
                     "description": "logs of the previous (crashed) instance; auto: if the container has restarted"},
        "tail_lines": {"type": "integer", "minimum": 1, "maximum": MAX_LOG_LINES, "default": 50},
        "max_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_LOG_BYTES, "default": 16384,
                      "description": "keep at most this many bytes of the newest output"},
    }, ["namespace"]),
    description="The last lines a container logged (by default of its crashed previous instance), bounded in size.",
)
async def pod_logs(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    namespace = p["namespace"]
    if ("pod" in p) == ("selector" in p):
        raise ApplicationError("k8s.pod_logs: invalid params: give either pod (a name) or selector, "
                               + ("not both" if "pod" in p else "neither was given"), type="InvalidParams",
                               non_retryable=True)
    if "pod" in p:
        pod = await must(p, Target("get", "pods", namespace, p["pod"]), "core", "read_namespaced_pod", p["pod"],
                         namespace)
    else:
        listed = await must(p, Target("list", "pods", namespace), "core", "list_namespaced_pod", namespace,
                            label_selector=p["selector"])
        pods = [pod for pod in listed.get("items") or [] if isinstance(pod, dict)]
        if not pods:
            raise ApplicationError(f'no pods match selector "{p["selector"]}" in namespace "{namespace}"',
                                   {"status": 404}, type="KubeNotFound", non_retryable=True)
        pod = _pick_pod(pods)
    name = pod["metadata"]["name"]
    container = _pick_container(pod, p.get("container"))
    status = _container_statuses(pod).get(container)
    wanted = p.get("previous", "auto")
    previous = _has_previous(status) if wanted == "auto" else bool(wanted)
    tail_lines, max_bytes = p.get("tail_lines", 50), p.get("max_bytes", 16384)
    result: dict[str, Any] = {"pod": name, "container": container, "previous": previous, "lines": [], "text": "",
                              "truncated": False, "bytes": 0, "note": None}
    target = Target("get", "pods/log", namespace, name)

    async def read(previous: bool) -> str:
        return await call(p, target, "core", "read_namespaced_pod_log", name, namespace, container=container,
                          previous=previous, tail_lines=tail_lines, limit_bytes=LOG_FETCH_BYTES, text=True)

    try:
        try:
            text = await read(previous)
        except KubeError as exc:
            # The kubelet keeps one dead instance, and not always (restarted node, pod re-created): for "auto" the
            # current instance's log is the next best answer.
            if not (exc.status == 400 and previous and wanted == "auto"):
                raise
            previous = False
            result.update(previous=False, note="the previous instance's log is gone; showing the current one")
            text = await read(False)
    except KubeError as exc:
        waiting = ((status or {}).get("state") or {}).get("waiting")
        # A container that never started has no log; that is an answer for a diagnosis step, not a failure.
        if exc.status == 400 and isinstance(waiting, dict) and not previous:
            result["note"] = (f'container "{container}" has not started ({waiting.get("reason") or "waiting"}), '
                              "so it has no logs yet")
            return result
        raise fail(exc, target) from None
    raw = (text or "").encode()
    kept, cut = _keep_end(raw, max_bytes)
    text = kept.decode(errors="ignore")
    result.update(lines=text.splitlines(), text=text, truncated=cut or len(raw) >= LOG_FETCH_BYTES,
                  bytes=len(text.encode()))
    return result


# -- k8s.events ---------------------------------------------------------------------------------------------------

MAX_EVENTS = 200
OBJECT_REF = {"type": "string", "pattern": r"^[A-Za-z]+/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
              "description": "Kind/name, e.g. Deployment/cart (a Deployment includes its ReplicaSets and Pods)"}


def _object_matcher(ref: str | None) -> Callable[[dict[str, Any]], bool] | None:
    """A predicate on involvedObject for `Kind/name`; None means every event."""
    if ref is None:
        return None
    kind, name = ref.split("/", 1)
    escaped = re.escape(name)
    # Deployment children are <name>-<template hash> and <name>-<template hash>-<suffix>. The exact shape (not
    # just the prefix) keeps Deployment/cart from picking up the pods of a Deployment named cart-api.
    replica_set = re.compile(rf"{escaped}-[a-z0-9]+")
    pod = re.compile(rf"{escaped}-[a-z0-9]+-[a-z0-9]+")

    def matches(involved: dict[str, Any]) -> bool:
        obj_kind, obj_name = involved.get("kind"), str(involved.get("name") or "")
        if obj_kind == kind and obj_name == name:
            return True
        if kind != "Deployment":
            return False
        return (obj_kind == "ReplicaSet" and replica_set.fullmatch(obj_name) is not None) or (
            obj_kind == "Pod" and pod.fullmatch(obj_name) is not None)

    return matches


@action(
    "k8s.events",
    params=_schema({
        "namespace": NAMESPACE,
        "object": OBJECT_REF,
        "types": {"type": "array", "items": {"enum": ["Normal", "Warning"]}, "minItems": 1, "uniqueItems": True,
                  "default": ["Normal", "Warning"]},
        "since": {"type": ["string", "number"], "default": "1h",
                  "description": "only events seen within this long before now, e.g. 30m, 1h"},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS, "default": 30},
    }, ["namespace"]),
    description="Recent events of a namespace or one object (a Deployment with its ReplicaSets and Pods), newest "
                "first; count and warning_count cover every match, events at most `limit`.",
)
async def events(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    namespace = p["namespace"]
    since_s = duration_param(p, "since", "1h")
    ref = p.get("object")
    field_selector = None
    if ref is not None and not ref.startswith("Deployment/"):
        # The server can filter a single object; a Deployment's children need the name patterns below.
        kind, name = ref.split("/", 1)
        field_selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    listed = await must(p, Target("list", "events", namespace), "core", "list_namespaced_event", namespace,
                        field_selector=field_selector)
    matches = _object_matcher(ref)
    types = set(p.get("types", ["Normal", "Warning"]))
    cutoff = datetime.now(UTC) - timedelta(seconds=since_s)
    found: list[tuple[datetime, dict[str, Any]]] = []
    for event in listed.get("items") or []:
        if not isinstance(event, dict) or (event.get("type") or "Normal") not in types:
            continue
        involved = event.get("involvedObject") or {}
        at = event_time(event)
        if at is None or at < cutoff or (matches is not None and not matches(involved)):
            continue
        found.append((at, event))
    found.sort(key=lambda item: item[0], reverse=True)
    out = [{"at": format_time(at), "type": event.get("type") or "Normal", "reason": event.get("reason") or "",
            "object": f"{(event.get('involvedObject') or {}).get('kind') or '?'}/"
                      f"{(event.get('involvedObject') or {}).get('name') or '?'}",
            "message": (event.get("message") or "").strip(), "count": event_count(event)}
           for at, event in found[: p.get("limit", 30)]]
    return {"events": out, "count": len(found),
            "warning_count": sum(1 for _, event in found if event.get("type") == "Warning")}


# -- k8s.node_conditions ------------------------------------------------------------------------------------------

# node_summary's problems are readiness, cordon and the pressure conditions; the rest are pressures.
NOT_PRESSURE = {"NotReady", "ReadyUnknown", "Unschedulable"}


@action(
    "k8s.node_conditions",
    params=_schema({
        "nodes": {"type": "array", "items": NAME, "minItems": 1, "uniqueItems": True,
                  "description": "node names (default: all nodes)"},
        "selector": {**SELECTOR, "description": "node label selector, e.g. node-pool=web"},
    }, []),
    description="Readiness, pressure conditions and cordons of nodes; healthy means all Ready with no pressure.",
)
async def node_conditions(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    listed = await must(p, Target("list", "nodes"), "core", "list_node", label_selector=p.get("selector") or None)
    nodes = [n for n in listed.get("items") or [] if isinstance(n, dict)]
    if "nodes" in p:
        by_name = {(n.get("metadata") or {}).get("name"): n for n in nodes}
        missing = [name for name in p["nodes"] if name not in by_name]
        if missing:
            scope = f' matching selector "{p["selector"]}"' if p.get("selector") else ""
            raise ApplicationError(f"nodes {', '.join(missing)} not found{scope}", {"status": 404},
                                   type="KubeNotFound", non_retryable=True)
        nodes = [by_name[name] for name in p["nodes"]]
    if not nodes:
        # "All of no nodes are healthy" would let a runbook carry on against a node pool that does not exist.
        raise ApplicationError(f'no nodes match selector "{p.get("selector", "")}"', {"status": 404},
                               type="KubeNotFound", non_retryable=True)
    summaries = [node_summary(n) for n in nodes]
    not_ready = [s["name"] for s in summaries if s["ready"] is not True]
    pressure = [s["name"] for s in summaries if set(s["problems"]) - NOT_PRESSURE]
    cordoned = [s["name"] for s in summaries if s["unschedulable"]]
    # A cordon is usually deliberate (maintenance), so it is reported but does not make the nodes unhealthy.
    return {"nodes": summaries, "not_ready": not_ready, "pressure": pressure, "cordoned": cordoned,
            "healthy": not not_ready and not pressure}


# -- k8s.top_pods -------------------------------------------------------------------------------------------------

NO_METRICS_NOTE = "metrics-server is not installed (metrics.k8s.io answered 404); resource usage skipped"


def _memory_limit(pod: dict[str, Any]) -> float | None:
    """Sum of the app containers' memory limits; None if any container is unbounded (then the pod is too)."""
    total = 0.0
    containers = (pod.get("spec") or {}).get("containers") or []
    for container in containers:
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if limit is None:
            return None
        try:
            total += parse_quantity(limit)
        except ValueError:
            return None
    return total if containers else None


def _usage(metrics: dict[str, Any]) -> tuple[float, float]:
    cpu = memory = 0.0
    for container in metrics.get("containers") or []:
        usage = container.get("usage") or {}
        # A container the metrics pipeline has not sampled yet reports nothing; count it as zero, not as an error.
        try:
            cpu += parse_quantity(usage.get("cpu", 0))
            memory += parse_quantity(usage.get("memory", 0))
        except ValueError:
            continue
    return cpu, memory


@action(
    "k8s.top_pods",
    params=_schema({
        "namespace": NAMESPACE, "selector": SELECTOR,
        "sort_by": {"enum": ["cpu", "memory"], "default": "memory"},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PODS_REPORTED, "default": 20},
    }, ["namespace"]),
    description="CPU and memory use of pods (kubectl top pod) with memory as a share of the limit; "
                "available is false when metrics-server is not installed.",
)
async def top_pods(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    namespace, selector = p["namespace"], p.get("selector") or None
    target = Target("list", "pods.metrics.k8s.io", namespace)
    try:
        metrics = await call(p, target, "custom", "list_namespaced_custom_object", "metrics.k8s.io", "v1beta1",
                             namespace, "pods", label_selector=selector)
    except KubeError as exc:
        if exc.status == 404:
            return {"available": False, "note": NO_METRICS_NOTE, "pods": []}
        raise fail(exc, target) from None
    # The pods themselves give the limits, and also apply the selector for metrics APIs that ignore it.
    listed = await must(p, Target("list", "pods", namespace), "core", "list_namespaced_pod", namespace,
                        label_selector=selector)
    pods = {(pod.get("metadata") or {}).get("name"): pod for pod in listed.get("items") or [] if isinstance(pod, dict)}
    rows = []
    for item in (metrics or {}).get("items") or []:
        name = (item.get("metadata") or {}).get("name")
        if name not in pods:
            continue
        cpu, memory = _usage(item)
        limit = _memory_limit(pods[name])
        rows.append({"name": name, "cpu": f"{math.ceil(cpu * 1000)}m", "memory": format_bytes(memory),
                     "cpu_cores": round(cpu, 3), "memory_bytes": int(memory),
                     "memory_limit": format_bytes(limit) if limit else None,
                     "memory_percent_of_limit": round(100 * memory / limit, 1) if limit else None})
    key = "cpu_cores" if p.get("sort_by", "memory") == "cpu" else "memory_bytes"
    rows.sort(key=lambda row: (-row[key], row["name"]))
    return {"available": True, "note": None, "pods": rows[: p.get("limit", 20)]}
