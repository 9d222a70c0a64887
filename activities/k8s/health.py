"""Pure classification of Kubernetes objects: what is wrong with a pod, node or deployment, in plain words.

Inputs are the raw JSON dicts the API returns (camelCase keys, RFC3339 timestamps), e.g. from
`ApiClient.sanitize_for_serialization` or a `_preload_content=False` response. Nothing here does I/O or imports
the client, so the actions stay thin and this logic is unit-tested on fixture dicts. Every field may be absent:
a just-created object has no status and a Pending pod has no containerStatuses. Every output is JSON-able, so it
can be a step output in a Temporal history.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from activities.k8s.fields import as_list, dig, owner_ref, parse_time

MI = 1024**2
GI = 1024**3
TI = 1024**4

_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# The apimachinery grammar: a signed decimal, then either an exponent or a suffix. The exponent alternative comes
# first so that "1E3" is 1000 while a bare "1E" still means exa.
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)"
)

# Waiting reasons that name the fault; other waiting reasons (ContainerCreating, PodInitializing) are normal.
_WAITING_PROBLEMS = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError")

_NODE_PRESSURES = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


# -- quantities ---------------------------------------------------------------------------------------------------


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity as a plain number: cores for CPU ("500m" -> 0.5), bytes for memory."""
    # bool is an int subclass; a True limit is a bug upstream, not a quantity of 1.
    if isinstance(text, bool):
        raise ValueError(f"invalid quantity {text!r}")
    if isinstance(text, int | float):
        if not math.isfinite(text):
            raise ValueError(f"invalid quantity '{text}'")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"invalid quantity {text!r}")
    match = _QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid quantity '{text}'")
    # Decimal keeps "1.5Gi" and "0.1" exact until the final conversion.
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex only admits valid decimals
        raise ValueError(f"invalid quantity '{text}'") from exc
    if match["exponent"]:
        value = number.scaleb(int(match["exponent"][1:]))
    elif match["suffix"] in _BINARY_SUFFIXES:
        value = number * (Decimal(1024) ** _BINARY_SUFFIXES[match["suffix"]])
    else:
        value = number.scaleb(_DECIMAL_SUFFIXES[match["suffix"] or ""])
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"invalid quantity '{text}'")
    return result


def format_bytes(n: float) -> str:
    """Bytes as a Kubernetes binary quantity that can go straight back into a limit ("256Mi", "1.5Gi", "2Gi").

    Exact values stay exact (whole Ti/Gi, Gi with up to two decimals when that is a whole number of Mi, whole Mi);
    anything else is rounded *up* to the next Mi, because a limit suggested from it must not be smaller.
    """
    if isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n):
        raise ValueError(f"invalid byte count {n!r}")
    if n < 0:
        return "-" + format_bytes(-n)
    whole = math.ceil(n)
    if whole == 0:
        return "0"
    if whole % TI == 0:
        return f"{whole // TI}Ti"
    if whole % GI == 0:
        return f"{whole // GI}Gi"
    if whole % MI == 0:
        gib = Decimal(whole) / GI
        # 1.5Gi reads better than 1536Mi; 1.07421875Gi does not read better than 1100Mi.
        if gib >= 1 and (gib * 100) == (gib * 100).to_integral_value():
            return f"{gib.normalize():f}Gi"
        return f"{whole // MI}Mi"
    return f"{-(-whole // MI)}Mi"


# -- helpers ------------------------------------------------------------------------------------------------------


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    # API timestamps are UTC; a naive `now` from a caller is taken to be UTC too rather than crashing the subtraction.
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _age_s(timestamp: Any, now: datetime | None) -> float | None:
    start = parse_time(timestamp)
    if start is None:
        return None
    return (_now(now) - start).total_seconds()


def _duration(seconds: float) -> str:
    """Like kubectl's AGE column: 45s, 3m20s, 2h5m, 3d4h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60}m" if s % 3600 // 60 else f"{s // 3600}h"
    return f"{s // 86400}d{s % 86400 // 3600}h" if s % 86400 // 3600 else f"{s // 86400}d"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _condition(conditions: Any, kind: str) -> dict[str, Any] | None:
    for cond in as_list(conditions):
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def _reason_message(cond: dict[str, Any] | None) -> str:
    """'Reason: message', or whichever of the two is present."""
    if not cond:
        return ""
    reason, message = cond.get("reason") or "", (cond.get("message") or "").strip()
    if reason and message:
        return f"{reason}: {message}"
    return reason or message


def _images(pod_spec: Any) -> list[str]:
    return [c["image"] for c in as_list(dig(pod_spec, "containers")) if isinstance(c, dict) and c.get("image")]


def _problem(reason: str, container: str | None, detail: str) -> dict[str, Any]:
    return {"reason": reason, "container": container, "detail": detail}


# -- pods ---------------------------------------------------------------------------------------------------------


def _memory_limits(pod: dict[str, Any]) -> dict[str, str]:
    limits: dict[str, str] = {}
    for key in ("initContainers", "containers"):
        for c in as_list(dig(pod, "spec", key)):
            limit = dig(c, "resources", "limits", "memory")
            if isinstance(c, dict) and c.get("name") and limit is not None:
                limits[c["name"]] = str(limit)
    return limits


def _exit_text(terminated: Any) -> str:
    """'exit code 1: Error' from a terminated state, or '' when there is none."""
    if not isinstance(terminated, dict):
        return ""
    code, reason = terminated.get("exitCode"), terminated.get("reason")
    if code is None:
        return reason or ""
    return f"exit code {code}: {reason}" if reason else f"exit code {code}"


def _container_problems(
    status: dict[str, Any], kind: str, restart_threshold: int, memory_limits: dict[str, str]
) -> list[dict[str, Any]]:
    name = status.get("name") or "?"
    who = f"{kind} {name}"
    restarts = _int(status.get("restartCount"))
    waiting = dig(status, "state", "waiting") or {}
    running = dig(status, "state", "running")
    terminated = dig(status, "state", "terminated")
    last_terminated = dig(status, "lastState", "terminated")
    found: list[dict[str, Any]] = []

    waiting_reason = waiting.get("reason") if isinstance(waiting, dict) else None
    waiting_message = (waiting.get("message") or "").strip() if isinstance(waiting, dict) else ""
    if waiting_reason == "CrashLoopBackOff":
        extra = [f"restarted {_plural(restarts, 'time')}"]
        if last := _exit_text(last_terminated):
            extra.append(f"last {last}")
        found.append(_problem(waiting_reason, name, f"{who} is in CrashLoopBackOff ({', '.join(extra)})"))
    elif waiting_reason in ("ImagePullBackOff", "ErrImagePull"):
        image = status.get("image") or "its image"
        detail = f"{who} cannot pull image {image} ({waiting_reason}"
        found.append(_problem(waiting_reason, name, detail + (f": {waiting_message})" if waiting_message else ")")))
    elif waiting_reason == "CreateContainerConfigError":
        # The message names the missing Secret/ConfigMap or key, which is the whole diagnosis.
        detail = f"{who} cannot be created (CreateContainerConfigError"
        found.append(_problem(waiting_reason, name, detail + (f": {waiting_message})" if waiting_message else ")")))

    # The current state shows an OOM kill only until the restart; after it, the evidence is in lastState, which
    # is exactly the case worth reporting (the container looks healthy again but will be killed again).
    oom_now = dig(terminated, "reason") == "OOMKilled"
    oom_before = dig(last_terminated, "reason") == "OOMKilled"
    if oom_now or oom_before:
        oom = terminated if oom_now else last_terminated
        extra = [f"exit code {oom['exitCode']}"] if oom.get("exitCode") is not None else []
        if name in memory_limits:
            extra.append(f"memory limit {memory_limits[name]}")
        else:
            extra.append("no memory limit")
        if oom.get("finishedAt"):
            extra.append(f"at {oom['finishedAt']}")
        if oom_now:
            tail = ""
        elif running:
            tail = "; it is running again"
        else:
            tail = " on its last run"
        found.append(_problem("OOMKilled", name, f"{who} was OOMKilled ({', '.join(extra)}){tail}"))

    # Strictly greater: "restarts over N" in the alert wording, so exactly N restarts is still fine.
    if restarts > restart_threshold:
        detail = f"{who} restarted {_plural(restarts, 'time')} (threshold {restart_threshold})"
        if last := _exit_text(last_terminated):
            detail += f", last {last}"
        found.append(_problem("RestartsOverThreshold", name, detail))
    return found


def _waiting_summary(pod: dict[str, Any]) -> list[str]:
    """'migrate (init, running)', 'cart (ContainerCreating)': what a scheduled but Pending pod is waiting on."""
    parts = []
    for key, label in (("initContainerStatuses", "init, "), ("containerStatuses", "")):
        for status in as_list(dig(pod, "status", key)):
            if not isinstance(status, dict):
                continue
            name = status.get("name") or "?"
            waiting = dig(status, "state", "waiting")
            if isinstance(waiting, dict):
                parts.append(f"{name} ({label}{waiting.get('reason') or 'waiting'})")
            elif label and dig(status, "state", "running") is not None:
                parts.append(f"{name} ({label}running)")
    return parts


def pod_problems(
    pod: dict[str, Any],
    *,
    restart_threshold: int = 3,
    now: datetime | None = None,
    pending_grace_s: float = 0,
) -> list[dict[str, Any]]:
    """What is wrong with a pod, most specific first: per-container faults (init containers first), then the
    pod-level Failed/Pending, and NotReady only when nothing more specific explains it.

    Container checks are independent, so one container can yield several problems (CrashLoopBackOff, the OOM kill
    that caused it, and RestartsOverThreshold); a consumer that wants one headline takes the first.
    """
    status = dig(pod, "status")
    status = status if isinstance(status, dict) else {}
    phase = status.get("phase")
    memory_limits = _memory_limits(pod)
    problems: list[dict[str, Any]] = []

    for key, kind in (("initContainerStatuses", "init container"), ("containerStatuses", "container")):
        for cs in as_list(dig(pod, "status", key)):
            if isinstance(cs, dict):
                problems.extend(_container_problems(cs, kind, restart_threshold, memory_limits))

    if phase == "Failed":
        why = _reason_message(status)
        if not why:
            exits = [
                f"{cs.get('name')} {_exit_text(dig(cs, 'state', 'terminated'))}"
                for cs in as_list(status.get("containerStatuses"))
                if isinstance(cs, dict) and _exit_text(dig(cs, "state", "terminated"))
            ]
            why = "; ".join(exits)
        problems.append(_problem("Failed", None, f"pod Failed ({why})" if why else "pod Failed"))

    elif phase == "Pending":
        age = _age_s(dig(pod, "metadata", "creationTimestamp"), now)
        # An unknown age cannot be shown to be within the grace period, so it is reported rather than hidden.
        if age is None or age > pending_grace_s or pending_grace_s <= 0:
            since = f" for {_duration(age)}" if age is not None else ""
            scheduled = _condition(status.get("conditions"), "PodScheduled")
            node = dig(pod, "spec", "nodeName")
            if scheduled is not None and scheduled.get("status") == "False":
                why = _reason_message(scheduled) or "not scheduled"
                detail = f"pod has been Pending{since}: {why}"
            elif node:
                waiting = _waiting_summary(pod)
                detail = f"pod has been Pending{since} on node {node}"
                if waiting:
                    detail += f", waiting for {', '.join(waiting)}"
            else:
                detail = f"pod has been Pending{since} and is not yet scheduled"
            problems.append(_problem("Pending", None, detail))

    elif phase == "Running" and not problems:
        ready = _condition(status.get("conditions"), "Ready")
        if ready is not None and ready.get("status") != "True":
            why = _reason_message(ready)
            detail = f"pod is Running but not Ready ({why})" if why else "pod is Running but not Ready"
            problems.append(_problem("NotReady", None, detail))
    return problems


def _owner(pod: dict[str, Any]) -> str | None:
    # The controller reference is the one that recreates the pod; other owners are incidental.
    ref = owner_ref(pod)
    if ref is None or not ref.get("kind") or not ref.get("name"):
        return None
    return f"{ref['kind']}/{ref['name']}"


def summarize_pod(
    pod: dict[str, Any],
    *,
    restart_threshold: int = 3,
    now: datetime | None = None,
    pending_grace_s: float = 0,
) -> dict[str, Any]:
    """One pod as a flat JSON-able dict. `restarts` sums init and app containers; `images` are the app
    containers' images as specified (not the resolved digests)."""
    metadata = dig(pod, "metadata") or {}
    status = dig(pod, "status") or {}
    ready = _condition(dig(status, "conditions"), "Ready")
    restarts = sum(
        _int(cs.get("restartCount"))
        for key in ("initContainerStatuses", "containerStatuses")
        for cs in as_list(dig(status, key))
        if isinstance(cs, dict)
    )
    return {
        "name": dig(metadata, "name"),
        "namespace": dig(metadata, "namespace"),
        "node": dig(pod, "spec", "nodeName"),
        "phase": dig(status, "phase"),
        "ready": bool(ready and ready.get("status") == "True"),
        "restarts": restarts,
        "age_s": _age_s(dig(metadata, "creationTimestamp"), now),
        "images": _images(dig(pod, "spec")),
        "problems": pod_problems(pod, restart_threshold=restart_threshold, now=now, pending_grace_s=pending_grace_s),
        "owner": _owner(pod),
    }


# -- nodes --------------------------------------------------------------------------------------------------------


def _taint_text(taint: dict[str, Any]) -> str:
    # kubectl's notation, which is also what `kubectl taint` accepts.
    key, value, effect = taint.get("key") or "", taint.get("value"), taint.get("effect") or ""
    text = f"{key}={value}" if value else key
    return f"{text}:{effect}" if effect else text


def node_summary(node: dict[str, Any]) -> dict[str, Any]:
    """A node's readiness, pressures, cordon and taints. `ready` is None when the kubelet has stopped reporting
    (Ready=Unknown) or has not reported yet, because that is not the same as the kubelet saying it is not ready."""
    conditions = [c for c in as_list(dig(node, "status", "conditions")) if isinstance(c, dict)]
    by_type = {c.get("type"): c.get("status") for c in conditions if c.get("type")}
    ready_cond = _condition(conditions, "Ready")
    ready_status = ready_cond.get("status") if ready_cond else None
    ready = {"True": True, "False": False}.get(ready_status) if ready_status else None
    unschedulable = bool(dig(node, "spec", "unschedulable"))

    problems: list[str] = []
    if ready is False:
        problems.append("NotReady")
    elif ready is None:
        problems.append("ReadyUnknown")
    problems.extend(p for p in _NODE_PRESSURES if by_type.get(p) == "True")
    if unschedulable:
        problems.append("Unschedulable")

    if ready_cond is None:
        reason = "the node has not reported a Ready condition"
    else:
        reason = _reason_message(ready_cond) or f"Ready is {ready_status}"
    return {
        "name": dig(node, "metadata", "name"),
        "ready": ready,
        "unschedulable": unschedulable,
        "conditions": by_type,
        "problems": problems,
        "ready_since": ready_cond.get("lastTransitionTime") if ready_cond else None,
        "reason": reason,
        "taints": [_taint_text(t) for t in as_list(dig(node, "spec", "taints")) if isinstance(t, dict)],
        "kubelet_version": dig(node, "status", "nodeInfo", "kubeletVersion"),
    }


# -- deployments --------------------------------------------------------------------------------------------------


def _desired(deployment: dict[str, Any]) -> int:
    replicas = dig(deployment, "spec", "replicas")
    # The API server defaults spec.replicas to 1; an explicit 0 (scaled down) must stay 0.
    return replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 1


def deployment_summary(deployment: dict[str, Any]) -> dict[str, Any]:
    """Replica counts and rollout state, judged as `kubectl rollout status` does."""
    metadata = dig(deployment, "metadata") or {}
    status = dig(deployment, "status") or {}
    name = dig(metadata, "name") or "?"
    desired = _desired(deployment)
    total = _int(dig(status, "replicas"))
    updated = _int(dig(status, "updatedReplicas"))
    ready = _int(dig(status, "readyReplicas"))
    available = _int(dig(status, "availableReplicas"))
    unavailable = _int(dig(status, "unavailableReplicas"))
    generation = dig(metadata, "generation")
    observed_generation = dig(status, "observedGeneration")
    # No observedGeneration means the controller has never synced the object (status absent on a new object).
    observed = isinstance(observed_generation, int) and observed_generation >= _int(generation)

    raw_conditions = [c for c in as_list(dig(status, "conditions")) if isinstance(c, dict) and c.get("type")]
    conditions = {
        c["type"]: {"status": c.get("status"), "reason": c.get("reason"), "message": c.get("message")}
        for c in raw_conditions
    }
    progressing = _condition(raw_conditions, "Progressing")

    if dig(deployment, "spec", "paused"):
        rollout = "paused"
        reason = f"deployment {name} is paused ({updated} of {desired} replicas updated, {available} available)"
    elif not observed:
        # Counts and conditions still describe the previous generation, so judging them would be premature.
        rollout = "progressing"
        reason = (
            f"waiting for the controller to observe generation {generation}"
            if isinstance(generation, int)
            else "waiting for the controller to observe the deployment"
        )
    elif (
        progressing is not None
        and progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded"
    ):
        rollout = "stalled"
        why = (progressing.get("message") or "").strip()
        reason = f"deployment {name} exceeded its progress deadline" + (f": {why}" if why else "")
    elif updated == desired and total == updated and available == updated:
        rollout = "complete"
        reason = f"deployment {name} successfully rolled out ({available} of {desired} replicas available)"
    else:
        rollout = "progressing"
        # Same precedence as kubectl: first the new ReplicaSet has to grow, then the old one shrink, then the
        # new pods become available.
        if updated < desired:
            reason = f"{updated} of {desired} new replicas have been updated"
        elif total > updated:
            old = total - updated
            reason = f"waiting for {old} old {'replica' if old == 1 else 'replicas'} to terminate"
        elif available < updated:
            reason = f"{available} of {updated} updated replicas are available"
        else:
            extra = updated - desired
            reason = f"waiting for {extra} extra {'replica' if extra == 1 else 'replicas'} to be scaled down"

    failure = _condition(raw_conditions, "ReplicaFailure")
    if rollout != "complete" and failure is not None and failure.get("status") == "True":
        # Quota or admission refusals surface only here, and they are why a rollout never progresses.
        reason += f"; ReplicaFailure: {_reason_message(failure)}"

    return {
        "namespace": dig(metadata, "namespace"),
        "name": dig(metadata, "name"),
        "desired": desired,
        "updated": updated,
        "ready": ready,
        "available": available,
        "unavailable": unavailable,
        "generation_observed": observed,
        "rollout": rollout,
        "reason": reason,
        "conditions": conditions,
        "images": _images(dig(deployment, "spec", "template", "spec")),
    }


def replica_mismatch(deployment: dict[str, Any]) -> dict[str, Any] | None:
    """None when as many replicas are available as desired; otherwise the gap in numbers and words. A surplus
    (available above desired, normal mid-rollout with maxSurge) is reported too, with a negative `missing`."""
    desired = _desired(deployment)
    available = _int(dig(deployment, "status", "availableReplicas"))
    if available == desired:
        return None
    ns, name = dig(deployment, "metadata", "namespace"), dig(deployment, "metadata", "name") or "?"
    who = f"deployment {ns}/{name}" if ns else f"deployment {name}"
    missing = desired - available
    if missing > 0:
        detail = f"{who} has {available} of {desired} desired replicas available ({missing} missing)"
    else:
        detail = f"{who} has {available} replicas available, {-missing} more than the {desired} desired"
    return {"desired": desired, "available": available, "missing": missing, "detail": detail}
