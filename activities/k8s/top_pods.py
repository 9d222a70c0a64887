"""`k8s.top_pods`: CPU and memory use of pods from metrics.k8s.io (`kubectl top pod`), memory against its limit."""

from __future__ import annotations

import math
from typing import Any

from activities.base import ActionInput, action
from activities.k8s.access import rule
from activities.k8s.api import KubeError, Target, call, fail, must
from activities.k8s.health import format_bytes, parse_quantity
from activities.k8s.schemas import MAX_PODS_REPORTED, NAMESPACE, SELECTOR, k8s_params

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
    kube_access=(rule("list pods"), rule("list pods.metrics.k8s.io")),
    params=k8s_params({
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
    key = "cpu_cores" if p["sort_by"] == "cpu" else "memory_bytes"
    rows.sort(key=lambda row: (-row[key], row["name"]))
    return {"available": True, "note": None, "pods": rows[: p["limit"]]}
