"""The worker's own check of where a runbook may change things, run by the action wrapper before a mutating action.

The workflow already refused a step outside the runbook's `changes` block (incidentctl.dsl.allowed_changes); this
checks again where the change is made, so a plan that slipped past the workflow (an older plan, one started by
hand) still cannot touch a protected namespace. Only here is the worker's environment read: the operator may
protect more namespaces with INCIDENTCTL_PROTECTED_NAMESPACES (comma-separated, added to the built-in ones), and a
step without a context is checked against the name of the kubeconfig's current context.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from activities.errors import ActionError
from incidentctl.dsl.allowed_changes import (
    PROTECTED_NAMESPACES,
    REFUSED,
    aws_refusal,
    changed_aws_resource,
    changed_node_pool,
    changed_object,
    gke_refusal,
    refusal,
)
from incidentctl.dsl.plan import Changes

PROTECTED_ENV = "INCIDENTCTL_PROTECTED_NAMESPACES"


def protected_namespaces() -> tuple[str, ...]:
    """The built-in protected namespaces plus the worker's own (never fewer)."""
    extra = [name.strip() for name in os.environ.get(PROTECTED_ENV, "").split(",") if name.strip()]
    return (*PROTECTED_NAMESPACES, *extra)


async def refuse_outside_changes(lease: str, changes: Changes | None, params: Mapping[str, Any]) -> None:
    """Raise a non-retryable ActionError naming the object, its namespace and the rule it breaks, if any."""
    pool = changed_node_pool(lease, params)
    if pool is not None:
        refused_pool = gke_refusal(changes, pool)
        if refused_pool:
            raise ActionError(refused_pool, type=REFUSED, non_retryable=True)
        return
    obj = changed_object(lease, params)
    if obj is None:
        resource = changed_aws_resource(lease, params)
        refused_aws = aws_refusal(changes, resource) if resource is not None else None
        if refused_aws:
            raise ActionError(refused_aws, type=REFUSED, non_retryable=True)
        return
    current = None
    if not obj.cluster and changes is not None and "*" not in changes.clusters:
        from activities.k8s.api import current_context  # a k8s object: the k8s layer names the context

        current = await asyncio.to_thread(current_context, dict(params))
    refused = refusal(changes, obj, protected_namespaces(), current)
    if refused:
        raise ActionError(refused, type=REFUSED, non_retryable=True)
