"""Status conditions as the API server shows them: find one, read Ready, and write one that keeps its
lastTransitionTime while its status does not change."""

from __future__ import annotations

from incidentctl.k8ssim.store import Obj


def condition(obj: Obj, kind: str) -> Obj | None:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c.get("type") == kind), None)


def is_ready(pod: Obj) -> bool:
    found = condition(pod, "Ready")
    return bool(found and found.get("status") == "True")


def node_ready(node: Obj) -> bool:
    found = condition(node, "Ready")
    return bool(found and found.get("status") == "True")


def new_condition(kind: str, status: str, reason: str | None, message: str | None, previous: Obj | None,
               now: str) -> Obj:
    changed = previous is None or previous.get("status") != status
    result: Obj = {"type": kind, "status": status,
                   "lastTransitionTime": now if changed else previous.get("lastTransitionTime", now)}  # type: ignore
    if reason:
        result["reason"] = reason
    if message:
        result["message"] = message
    return result
