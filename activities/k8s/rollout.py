"""Deployment remediation: rollout restart, rollout undo, scale, resources. Each records before/after.

Idempotent under Temporal retries: restart stamps the activity's scheduled time (a retry stamps the same value,
so no second restart); undo marks the deployment with `<incident>/<step>` and a retry that finds its own mark
reports the rollback already done instead of undoing again (which would flip back to the bad revision).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ActionInput, action
from activities.k8s.api import CONNECTION, NAME, NAMESPACE, Target, dry_run_kwargs, must, refuse
from activities.k8s.changes import revision_of
from activities.k8s.fields import format_time
from activities.k8s.health import format_bytes, parse_quantity

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
ROLLBACK_MARK = "incidentctl.dev/rollback"
HASH_LABEL = "pod-template-hash"
HARD_MAX_REPLICAS = 100
HARD_MAX_MEMORY = "64Gi"
HARD_MAX_CPU = "32"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
QUANTITY = {"type": "string", "pattern": r"^[0-9.]+(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"}


def _schema(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"namespace": NAMESPACE, "deployment": NAME, **properties, **CONNECTION},
            "required": ["namespace", "deployment", *required], "additionalProperties": False, **extra}


async def _read(p: dict[str, Any]) -> dict[str, Any]:
    return await must(p, Target("get", "deployments.apps", p["namespace"], p["deployment"]), "apps",
                      "read_namespaced_deployment", p["deployment"], p["namespace"])


async def _patch(p: dict[str, Any], body: Any, content_type: str, dry_run: bool) -> dict[str, Any]:
    return await must(p, Target("patch", "deployments.apps", p["namespace"], p["deployment"]), "apps",
                      "patch_namespaced_deployment", p["deployment"], p["namespace"], body,
                      _content_type=content_type, **dry_run_kwargs(dry_run))


def _state(deployment: dict[str, Any]) -> dict[str, Any]:
    spec = deployment.get("spec", {})
    containers = spec.get("template", {}).get("spec", {}).get("containers", [])
    return {"revision": revision_of(deployment),
            "replicas": spec.get("replicas", 1),
            "images": {c["name"]: c.get("image") for c in containers},
            "resources": {c["name"]: c.get("resources", {}) for c in containers},
            "restarted_at": spec.get("template", {}).get("metadata", {}).get("annotations", {}).get(RESTARTED_AT)}


def _result(p: dict[str, Any], before: dict[str, Any], after: dict[str, Any], dry_run: bool,
            **extra: Any) -> dict[str, Any]:
    return {"namespace": p["namespace"], "deployment": p["deployment"], "before": _state(before),
            "after": _state(after), "changed": _state(before) != _state(after), "dry_run": dry_run, **extra}


@action(
    "k8s.rollout_restart",
    params=_schema({}, []),
    mutates=True,
    description="kubectl rollout restart: new pods for the same template (restartedAt annotation).",
)
async def rollout_restart(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    before = await _read(p)
    stamp = (activity.info().scheduled_time if activity.in_activity() else datetime.now(UTC))
    value = format_time(stamp)
    if _state(before)["restarted_at"] == value:
        return _result(p, before, before, inp.dry_run, note="already restarted by this step")
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: value}}}}}
    after = await _patch(p, body, STRATEGIC, inp.dry_run)
    return _result(p, before, after, inp.dry_run)


def _owned_sets(listed: dict[str, Any], deployment: dict[str, Any]) -> list[dict[str, Any]]:
    uid = deployment["metadata"]["uid"]
    return [rs for rs in listed.get("items", [])
            if any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences", []))]


def _bare_template(rs: dict[str, Any]) -> dict[str, Any]:
    template = json.loads(json.dumps(rs["spec"]["template"]))
    labels = template.get("metadata", {}).get("labels", {})
    labels.pop(HASH_LABEL, None)
    return template


@action(
    "k8s.rollout_undo",
    params=_schema({"to_revision": {"type": "integer", "minimum": 1,
                                    "description": "revision to go back to (default: the previous one)"}}, []),
    mutates=True,
    description="kubectl rollout undo: put the pod template of an earlier ReplicaSet back on the deployment.",
)
async def rollout_undo(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    before = await _read(p)
    mark = f"{inp.incident_id}/{inp.step_id}"
    annotations = before["metadata"].get("annotations", {})
    if inp.incident_id and annotations.get(ROLLBACK_MARK) == mark:
        return _result(p, before, before, inp.dry_run, to_revision=None, note="already rolled back by this step")
    listed = await must(p, Target("list", "replicasets.apps", p["namespace"]), "apps",
                        "list_namespaced_replica_set", p["namespace"])
    sets = sorted(_owned_sets(listed, before), key=lambda rs: revision_of(rs) or 0)
    current = _state(before)["revision"] or 0
    revisions = {revision_of(rs): rs for rs in sets}
    wanted = p.get("to_revision")
    if wanted is None:
        earlier = [r for r in revisions if r is not None and r < current]
        if not earlier:
            raise ApplicationError(f"deployment {p['namespace']}/{p['deployment']} has no revision before "
                                   f"{current} to roll back to", type="NoPreviousRevision", non_retryable=True)
        wanted = max(earlier)
    target = revisions.get(wanted)
    if target is None:
        known = ", ".join(str(r) for r in sorted(r for r in revisions if r is not None))
        raise ApplicationError(f"deployment {p['namespace']}/{p['deployment']} has no revision {wanted} "
                               f"(known: {known})", type="UnknownRevision", non_retryable=True)
    template = _bare_template(target)
    if template == before["spec"]["template"]:
        return _result(p, before, before, inp.dry_run, to_revision=wanted, note=f"already at revision {wanted}'s "
                                                                                  "template")
    # As kubectl does: one JSON patch replacing the template and the annotations (plus our retry mark).
    new_annotations = {**annotations, ROLLBACK_MARK: mark} if inp.incident_id else dict(annotations)
    body = [{"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": new_annotations}]
    after = await _patch(p, body, JSON_PATCH, inp.dry_run)
    if not inp.dry_run:
        after = await _read(p)  # the controller has now given the re-used ReplicaSet its new revision number
    return _result(p, before, after, inp.dry_run, to_revision=wanted,
                   replica_set=target["metadata"]["name"])


@action(
    "k8s.scale",
    params=_schema({
        "replicas": {"type": "integer", "minimum": 0},
        "min_replicas": {"type": "integer", "minimum": 0, "default": 0},
        "max_replicas": {"type": "integer", "minimum": 0, "maximum": HARD_MAX_REPLICAS, "default": 20},
    }, ["replicas"]),
    mutates=True,
    description=f"Set a deployment's replicas within [min_replicas, max_replicas] (never above "
                f"{HARD_MAX_REPLICAS}).",
)
async def scale(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    low, high = p.get("min_replicas", 0), min(p.get("max_replicas", 20), HARD_MAX_REPLICAS)
    if not low <= p["replicas"] <= high:
        raise refuse(f"scaling {p['namespace']}/{p['deployment']} to {p['replicas']} replicas is outside the "
                      f"bounds [{low}, {high}]")
    before = await _read(p)
    if before["spec"].get("replicas", 1) == p["replicas"]:
        return _result(p, before, before, inp.dry_run)
    after = await _patch(p, {"spec": {"replicas": p["replicas"]}}, MERGE_PATCH, inp.dry_run)
    return _result(p, before, after, inp.dry_run)


def _new_value(current: str | None, absolute: str | None, factor: float | None, what: str) -> float | None:
    if absolute is not None:
        return parse_quantity(absolute)
    if factor is None:
        return None
    if current is None:
        raise refuse(f"{what} has no current value to multiply; give an absolute value instead")
    return parse_quantity(current) * factor


@action(
    "k8s.set_resources",
    params=_schema({
        "container": NAME,
        "memory_limit": QUANTITY, "memory_factor": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
        "max_memory": QUANTITY,
        "cpu_limit": QUANTITY, "cpu_request": QUANTITY, "max_cpu": QUANTITY,
    }, [], dependentRequired={"memory_limit": ["max_memory"], "memory_factor": ["max_memory"],
                              "cpu_limit": ["max_cpu"], "cpu_request": ["max_cpu"]}),
    mutates=True,
    description="Raise or lower a container's memory/CPU within a bound (max_memory/max_cpu are required).",
)
async def set_resources(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    before = await _read(p)
    containers = before["spec"]["template"]["spec"].get("containers", [])
    names = [c["name"] for c in containers]
    name = p.get("container") or (names[0] if len(names) == 1 else None)
    if name not in names:
        raise ApplicationError(f"deployment {p['namespace']}/{p['deployment']} has containers "
                               f"{', '.join(names)}; say which with container:", type="UnknownContainer",
                               non_retryable=True)
    resources = next(c for c in containers if c["name"] == name).get("resources", {})
    limits, requests = dict(resources.get("limits", {})), dict(resources.get("requests", {}))
    memory = _new_value(limits.get("memory"), p.get("memory_limit"), p.get("memory_factor"), f"{name}'s memory limit")
    if memory is not None:
        bound = min(parse_quantity(p["max_memory"]), parse_quantity(HARD_MAX_MEMORY))
        memory = float(math.ceil(memory / 2**20) * 2**20)  # whole Mi, rounded up
        if memory > bound:
            raise refuse(f"a memory limit of {format_bytes(memory)} for {name} exceeds max_memory "
                          f"{format_bytes(bound)}")
        limits["memory"] = format_bytes(memory)
        if "memory" in requests and parse_quantity(requests["memory"]) > memory:
            requests["memory"] = limits["memory"]
    for key, target in (("cpu_limit", limits), ("cpu_request", requests)):
        if key in p:
            bound = min(parse_quantity(p["max_cpu"]), parse_quantity(HARD_MAX_CPU))
            if parse_quantity(p[key]) > bound:
                raise refuse(f"{key.replace('_', ' ')} {p[key]} for {name} exceeds max_cpu {p['max_cpu']}")
            target["cpu"] = p[key]
    wanted = {"limits": limits, "requests": requests}
    if {k: v for k, v in wanted.items() if v} == {k: v for k, v in resources.items() if v}:
        return _result(p, before, before, inp.dry_run, container=name)
    body = {"spec": {"template": {"spec": {"containers": [{"name": name, "resources": wanted}]}}}}
    after = await _patch(p, body, STRATEGIC, inp.dry_run)
    return _result(p, before, after, inp.dry_run, container=name)
