"""Network containment: isolate a deployment's pods from incoming traffic with a NetworkPolicy, and undo it.

The policy is labelled `app.kubernetes.io/managed-by=incidentctl`, and only such policies are ever replaced or
deleted: a policy of the same name that someone wrote by hand is refused, never overwritten or removed.
Policies only take effect where the cluster's network plugin enforces NetworkPolicy.
"""

from __future__ import annotations

import copy
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.base import ActionInput, action
from activities.k8s.api import (
    CONNECTION,
    NAME,
    NAMESPACE,
    KubeError,
    Target,
    call,
    dry_run_kwargs,
    fail,
    must,
    namespace_exists,
    namespace_missing,
    refuse,
)

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "incidentctl"
INCIDENT_ANNOTATION = "incidentctl.dev/incident"
STEP_ANNOTATION = "incidentctl.dev/step"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
RESOURCE = "networkpolicies.networking.k8s.io"
NAME_PREFIX = "incidentctl-isolate-"


def _policy_name(p: dict[str, Any]) -> str:
    return p.get("name") or f"{NAME_PREFIX}{p['deployment']}"


def _selector(selector: Any) -> dict[str, Any]:
    """A label selector with empty parts dropped: the API server omits them, so they must not count as changes."""
    selector = selector if isinstance(selector, dict) else {}
    result: dict[str, Any] = {}
    if selector.get("matchLabels"):
        result["matchLabels"] = dict(selector["matchLabels"])
    if selector.get("matchExpressions"):
        result["matchExpressions"] = copy.deepcopy(selector["matchExpressions"])
    return result


def _spec(spec: Any) -> dict[str, Any]:
    """A NetworkPolicy spec in the one shape we compare and report (absent lists are empty, as the API means)."""
    spec = spec if isinstance(spec, dict) else {}
    result: dict[str, Any] = {"podSelector": _selector(spec.get("podSelector")),
                              "policyTypes": sorted(spec.get("policyTypes") or []),
                              "ingress": copy.deepcopy(spec.get("ingress") or [])}
    if spec.get("egress"):
        result["egress"] = copy.deepcopy(spec["egress"])
    return result


def _wanted_spec(pod_selector: dict[str, Any], allowed: list[str]) -> dict[str, Any]:
    ingress: list[dict[str, Any]] = []
    if allowed:
        ingress.append({"from": [{"namespaceSelector": {"matchExpressions": [
            {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": sorted(set(allowed))}]}}]})
    return {"podSelector": pod_selector, "policyTypes": ["Ingress"], "ingress": ingress}


def _managed(policy: dict[str, Any]) -> bool:
    return (policy["metadata"].get("labels") or {}).get(MANAGED_BY) == MANAGER


async def _read_policy(p: dict[str, Any], name: str) -> dict[str, Any] | None:
    target = Target("get", RESOURCE, p["namespace"], name)
    try:
        return await call(p, target, "networking", "read_namespaced_network_policy", name, p["namespace"])
    except KubeError as exc:
        if exc.status != 404:
            raise fail(exc, target) from None
        if not await namespace_exists(p, p["namespace"]):
            raise namespace_missing(p["namespace"], target.describe()) from None
        return None


def _unmanaged(p: dict[str, Any], name: str, verb: str) -> ApplicationError:
    return refuse(f'networkpolicy "{name}" in namespace "{p["namespace"]}" is not managed by incidentctl (no label '
                  f"{MANAGED_BY}={MANAGER}): refusing to {verb} it", "Refused")


@action(
    "k8s.isolate",
    params={"type": "object", "properties": {
        "namespace": NAMESPACE, "deployment": NAME,
        "name": {**NAME, "description": "the NetworkPolicy's name (default incidentctl-isolate-<deployment>)"},
        "allow_from_namespaces": {"type": "array", "items": NAMESPACE, "uniqueItems": True, "maxItems": 50,
                                  "description": "namespaces still allowed in, e.g. monitoring"},
        **CONNECTION,
    }, "required": ["namespace", "deployment"], "additionalProperties": False},
    mutates=True,
    description="Contain a deployment: a NetworkPolicy that denies all ingress to its pods (except from the "
                "namespaces in allow_from_namespaces).",
)
async def isolate(inp: ActionInput) -> dict[str, Any]:
    p, dry_run = inp.params, inp.dry_run
    namespace, name = p["namespace"], _policy_name(p)
    deployment = await must(p, Target("get", "deployments.apps", namespace, p["deployment"]), "apps",
                            "read_namespaced_deployment", p["deployment"], namespace)
    pod_selector = _selector(deployment.get("spec", {}).get("selector"))
    # An empty podSelector selects every pod in the namespace: never isolate more than the deployment.
    if not pod_selector:
        raise refuse(f"deployment {namespace}/{p['deployment']} has an empty selector: isolating it would isolate "
                     "every pod in the namespace", "Refused")
    wanted = _wanted_spec(pod_selector, p.get("allow_from_namespaces") or [])
    existing = await _read_policy(p, name)
    before = _spec(existing["spec"]) if existing else None
    if existing is not None and not _managed(existing):
        raise _unmanaged(p, name, "replace")
    if before == _spec(wanted):
        return {"policy": name, "namespace": namespace, "pod_selector": pod_selector, "before": before,
                "after": before, "changed": False, "dry_run": dry_run}
    body: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY: MANAGER},
                     "annotations": {INCIDENT_ANNOTATION: inp.incident_id, STEP_ANNOTATION: inp.step_id}},
        "spec": wanted,
    }
    if existing is None:
        written = await must(p, Target("create", RESOURCE, namespace, name), "networking",
                             "create_namespaced_network_policy", namespace, body, **dry_run_kwargs(dry_run))
    else:
        # The resourceVersion makes a concurrent change a 409 (retried from a fresh read), not a lost update.
        body["metadata"]["resourceVersion"] = existing["metadata"].get("resourceVersion")
        written = await must(p, Target("update", RESOURCE, namespace, name), "networking",
                             "replace_namespaced_network_policy", name, namespace, body, **dry_run_kwargs(dry_run))
    after = _spec(written.get("spec"))
    return {"policy": name, "namespace": namespace, "pod_selector": pod_selector, "before": before, "after": after,
            "changed": before != after, "dry_run": dry_run}


@action(
    "k8s.remove_isolation",
    params={"type": "object", "properties": {
        "namespace": NAMESPACE, "deployment": NAME,
        "name": {**NAME, "description": "the NetworkPolicy's name (default incidentctl-isolate-<deployment>)"},
        **CONNECTION,
    }, "required": ["namespace"], "additionalProperties": False},
    mutates=True,
    description="Undo k8s.isolate: delete the NetworkPolicy it created (only ones labelled managed-by=incidentctl).",
)
async def remove_isolation(inp: ActionInput) -> dict[str, Any]:
    """`name` wins over `deployment` when both are given."""
    p, dry_run = inp.params, inp.dry_run
    # Checked here, not as a schema anyOf: the compiler checks literal params only, and a templated `deployment`
    # would look absent to it.
    if not p.get("name") and not p.get("deployment"):
        raise ApplicationError("k8s.remove_isolation: invalid params: give deployment or name", type="InvalidParams",
                               non_retryable=True)
    namespace, name = p["namespace"], _policy_name(p)
    existing = await _read_policy(p, name)
    if existing is None:
        return {"policy": name, "namespace": namespace, "before": None, "after": None, "changed": False,
                "dry_run": dry_run}
    if not _managed(existing):
        raise _unmanaged(p, name, "delete")
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
    return {"policy": name, "namespace": namespace, "before": _spec(existing["spec"]), "after": None,
            "changed": changed, "dry_run": dry_run}
