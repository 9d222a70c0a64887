"""`k8s.set_resources`: raise or lower one container's memory and CPU, never past a bound."""

from __future__ import annotations

import math
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.api import STRATEGIC_MERGE_PATCH, refuse
from activities.k8s.deployments import change_record, patch_deployment, read_deployment
from activities.k8s.health import format_bytes, parse_quantity
from activities.k8s.schemas import DEPLOYMENT_LEASE, NAME, NAMESPACE, k8s_params

HARD_MAX_MEMORY = "64Gi"
HARD_MAX_CPU = "32"
QUANTITY = {"type": "string", "pattern": r"^[0-9.]+(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"}


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
        return change_record(p, before, before, inp.dry_run, container=name)
    body = {"spec": {"template": {"spec": {"containers": [{"name": name, "resources": wanted}]}}}}
    after = await patch_deployment(p, body, STRATEGIC_MERGE_PATCH, inp.dry_run)
    return change_record(p, before, after, inp.dry_run, container=name)
