"""`k8s.pod_logs`: the last lines a container logged, by default those of its crashed previous instance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.access import rule
from activities.k8s.api import KubeError, Target, call, fail, must
from activities.k8s.health import pod_problems, summarize_pod
from activities.k8s.schemas import NAME, NAMESPACE, SELECTOR, k8s_params

MAX_LOG_BYTES = 256 * 1024
MAX_LOG_LINES = 1000

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
            raise ActionError(f'pod "{name}" has no container "{wanted}" (containers: '
                              f"{', '.join(containers + init_containers) or 'none'})", type="InvalidParams",
                              non_retryable=True)
        return wanted
    # pod_problems lists init containers first, which is also the order in which they break a pod.
    for problem in pod_problems(pod):
        if problem["container"] in containers + init_containers:
            return problem["container"]
    if not containers:
        raise ActionError(f'pod "{name}" has no containers', type="InvalidParams", non_retryable=True)
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
    kube_access=(rule("get,list pods"), rule("get pods/log")),
    # "pod or selector" is checked in the action, not with oneOf: the compiler validates only the literal params,
    # so a templated selector would look absent to it.
    params=k8s_params({
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
        raise ActionError("k8s.pod_logs: invalid params: give either pod (a name) or selector, "
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
            raise ActionError(f'no pods match selector "{p["selector"]}" in namespace "{namespace}"',
                              {"status": 404}, type="KubeNotFound", non_retryable=True)
        pod = _pick_pod(pods)
    name = pod["metadata"]["name"]
    container = _pick_container(pod, p.get("container"))
    status = _container_statuses(pod).get(container)
    wanted = p["previous"]
    previous = _has_previous(status) if wanted == "auto" else bool(wanted)
    tail_lines, max_bytes = p["tail_lines"], p["max_bytes"]
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
