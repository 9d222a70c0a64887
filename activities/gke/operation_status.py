"""`gke.operation_status`: one GKE operation's type, status and error (a `wait_until` step polls it)."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.gke.api import READ_OPERATIONS, PoolRef, call, operation_record
from activities.gke.schemas import gke_params


@action("gke.operation_status", params=gke_params({
    "operation": {"type": "string", "minLength": 1,
                  "description": "the operation's id (operation-123...) or full name (projects/.../operations/...)"},
}, ["operation"]))
async def operation_status(inp: ActionInput) -> dict[str, Any]:
    """A GKE operation: type, status (PENDING, RUNNING, DONE, ABORTING), target, and its error if it failed."""
    ref = PoolRef.of(inp.params)
    name = ref.operation_name(inp.params["operation"])
    return operation_record(await call("get_operation", {"name": name}, what=f"operation {name}",
                                       permission=READ_OPERATIONS, timeout_s=inp.params["api_timeout"]))
