"""`k8s.remove_isolation`: undo `k8s.isolate` by deleting its NetworkPolicy (only one incidentctl labelled)."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.access import rule
from activities.k8s.api import KubeError, Target, call, dry_run_kwargs, fail
from activities.k8s.network_policies import (
    POLICY_NAME,
    RESOURCE,
    managed,
    policy_name,
    policy_spec,
    read_policy,
    refuse_unmanaged,
)
from activities.k8s.schemas import DEPLOYMENT_LEASE, NAME, NAMESPACE, k8s_params


@action(
    "k8s.remove_isolation",
    kube_access=(rule("get,delete networkpolicies.networking.k8s.io"),),
    params=k8s_params({"namespace": NAMESPACE, "deployment": NAME, "name": POLICY_NAME}, ["namespace"]),
    mutates=True, idempotent=True, lease=DEPLOYMENT_LEASE,
    description="Undo k8s.isolate: delete the NetworkPolicy it created (only ones labelled managed-by=incidentctl).",
)
async def remove_isolation(inp: ActionInput) -> dict[str, Any]:
    """`name` wins over `deployment` when both are given."""
    p, dry_run = inp.params, inp.dry_run
    # Checked here, not as a schema anyOf: the compiler checks literal params only, and a templated `deployment`
    # would look absent to it.
    if not p.get("name") and not p.get("deployment"):
        raise ActionError("k8s.remove_isolation: invalid params: give deployment or name", type="InvalidParams",
                          non_retryable=True)
    namespace, name = p["namespace"], policy_name(p)
    existing = await read_policy(p, name)
    if existing is None:
        return {"policy": name, "namespace": namespace, "before": None, "after": None, "changed": False,
                "dry_run": dry_run}
    if not managed(existing):
        raise refuse_unmanaged(p, name, "delete")
    target = Target("delete", RESOURCE, namespace, name)
    uid = existing["metadata"].get("uid")
    changed = True
    try:
        # The uid precondition keeps a policy recreated meanwhile (by someone else) from being deleted by mistake.
        await call(p, target, "networking", "delete_namespaced_network_policy", name, namespace,
                   body={"preconditions": {"uid": uid}} if uid else None, **dry_run_kwargs(dry_run))
    except KubeError as exc:
        if exc.status == 404:
            changed = False  # deleted by someone else between our read and our delete
        else:
            raise fail(exc, target) from None
    return {"policy": name, "namespace": namespace, "before": policy_spec(existing["spec"]), "after": None,
            "changed": changed, "dry_run": dry_run}
