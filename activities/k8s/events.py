"""`k8s.events`: recent events of a namespace or of one object, a Deployment with its ReplicaSets and Pods."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.base import ActionInput, action
from activities.k8s.access import rule
from activities.k8s.api import Target, duration_param, must
from activities.k8s.changes import event_count, event_time
from activities.k8s.fields import format_time
from activities.k8s.schemas import NAMESPACE, k8s_params

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
    kube_access=(rule("list events"),),
    params=k8s_params({
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
    since_s = duration_param(p, "since")
    ref = p.get("object")
    field_selector = None
    if ref is not None and not ref.startswith("Deployment/"):
        # The server can filter a single object; a Deployment's children need the name patterns below.
        kind, name = ref.split("/", 1)
        field_selector = f"involvedObject.kind={kind},involvedObject.name={name}"
    listed = await must(p, Target("list", "events", namespace), "core", "list_namespaced_event", namespace,
                        field_selector=field_selector)
    matches = _object_matcher(ref)
    types = set(p["types"])
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
           for at, event in found[: p["limit"]]]
    return {"events": out, "count": len(found),
            "warning_count": sum(1 for _, event in found if event.get("type") == "Warning")}
