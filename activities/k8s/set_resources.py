"""`k8s.set_resources`: raise or lower one container's memory and CPU, never past a bound.

Idempotent under Temporal retries: the patch that changes the resources also records, in the deployment's
`incidentctl.dev/resources-before` annotation, the container's resources it started from and the step that
changed them. A retry of the same step (the worker died after the patch landed) finds its own record and computes
the new values from the recorded ones, never from the already raised ones, so `memory_factor` is applied once;
it reports the recorded values as `before`, so the runbook's rollback restores the original limit.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.access import rule
from activities.k8s.api import STRATEGIC_MERGE_PATCH, refuse
from activities.k8s.changes import REVISION_ANNOTATION, revision_of
from activities.k8s.deployments import change_record, patch_deployment, read_deployment
from activities.k8s.health import format_bytes, parse_quantity
from activities.k8s.schemas import DEPLOYMENT_LEASE, NAME, NAMESPACE, k8s_params

HARD_MAX_MEMORY = "64Gi"
HARD_MAX_CPU = "32"
RESOURCES_BEFORE = "incidentctl.dev/resources-before"
QUANTITY = {"type": "string", "pattern": r"^[0-9.]+(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"}


def _recorded(deployment: dict[str, Any], key: str, container: str) -> dict[str, Any] | None:
    """What this step's earlier attempt recorded before changing `container` (None: no attempt of it did)."""
    raw = deployment["metadata"].get("annotations", {}).get(RESOURCES_BEFORE)
    try:
        record = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("step") != key or record.get("container") != container:
        return None
    return record


def _as_it_was(deployment: dict[str, Any], container: str, record: dict[str, Any]) -> dict[str, Any]:
    """The deployment as the first attempt saw it (its recorded resources and revision), for the change record."""
    was = copy.deepcopy(deployment)
    for spec in was["spec"]["template"]["spec"]["containers"]:
        if spec["name"] == container:
            spec["resources"] = record["resources"]
    if record.get("revision") is not None:
        was["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = str(record["revision"])
    return was


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
    kube_access=(rule("get,patch deployments.apps"),),
    params=k8s_params({
        "namespace": NAMESPACE, "deployment": NAME,
        "container": NAME,
        "memory_limit": QUANTITY, "memory_factor": {"type": "number", "exclusiveMinimum": 0, "maximum": 4},
        "max_memory": QUANTITY,
        "cpu_limit": QUANTITY, "cpu_request": QUANTITY, "max_cpu": QUANTITY,
    }, ["namespace", "deployment"], dependentRequired={"memory_limit": ["max_memory"],
                                                       "memory_factor": ["max_memory"],
                                                       "cpu_limit": ["max_cpu"], "cpu_request": ["max_cpu"]}),
    mutates=True, idempotent=True, lease=DEPLOYMENT_LEASE,
    description="Raise or lower a container's memory/CPU within a bound (max_memory/max_cpu are required).",
)
async def set_resources(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    before = await read_deployment(p)
    containers = before["spec"]["template"]["spec"].get("containers", [])
    names = [c["name"] for c in containers]
    name = p.get("container") or (names[0] if len(names) == 1 else None)
    if name not in names:
        raise ActionError(f"deployment {p['namespace']}/{p['deployment']} has containers "
                          f"{', '.join(names)}; say which with container:", type="UnknownContainer",
                          non_retryable=True)
    resources = next(c for c in containers if c["name"] == name).get("resources", {})
    step_key = inp.retry_key()
    record = _recorded(before, step_key, name) if inp.incident_id else None
    current = before
    if record is not None:
        # An earlier attempt of this step changed them already: start from what it started from.
        before = _as_it_was(current, name, record)
    start = record["resources"] if record is not None else resources
    limits, requests = dict(start.get("limits", {})), dict(start.get("requests", {}))
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
        return change_record(p, before, current, inp.dry_run, container=name,
                             **({"note": "already set by this step"} if record is not None else {}))
    body: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [{"name": name, "resources": wanted}]}}}}
    if inp.incident_id:
        # In the same patch as the change, so a retry that finds the change also finds where it started from.
        body["metadata"] = {"annotations": {RESOURCES_BEFORE: json.dumps(
            {"step": step_key, "container": name, "resources": start, "revision": revision_of(before)},
            sort_keys=True)}}
    after = await patch_deployment(p, body, STRATEGIC_MERGE_PATCH, inp.dry_run)
    return change_record(p, before, after, inp.dry_run, container=name)
