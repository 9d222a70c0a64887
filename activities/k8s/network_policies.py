"""The NetworkPolicies incidentctl manages (what `k8s.isolate` writes and `k8s.remove_isolation` deletes).

They are labelled `app.kubernetes.io/managed-by=incidentctl`, and only such policies are ever replaced or deleted:
a policy of the same name that someone wrote by hand is refused, never overwritten or removed.
"""

from __future__ import annotations

import copy
from typing import Any

from activities.errors import ActionError
from activities.k8s.api import KubeError, Target, call, fail, namespace_exists, namespace_missing, refuse
from activities.k8s.schemas import NAME

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "incidentctl"
RESOURCE = "networkpolicies.networking.k8s.io"
NAME_PREFIX = "incidentctl-isolate-"
POLICY_NAME = {**NAME, "description": f"the NetworkPolicy's name (default {NAME_PREFIX}<deployment>)"}


def policy_name(p: dict[str, Any]) -> str:
    return p.get("name") or f"{NAME_PREFIX}{p['deployment']}"


def label_selector(selector: Any) -> dict[str, Any]:
    """A label selector with empty parts dropped: the API server omits them, so they must not count as changes."""
    selector = selector if isinstance(selector, dict) else {}
    result: dict[str, Any] = {}
    if selector.get("matchLabels"):
        result["matchLabels"] = dict(selector["matchLabels"])
    if selector.get("matchExpressions"):
        result["matchExpressions"] = copy.deepcopy(selector["matchExpressions"])
    return result


def policy_spec(spec: Any) -> dict[str, Any]:
    """A NetworkPolicy spec in the one shape we compare and report (absent lists are empty, as the API means)."""
    spec = spec if isinstance(spec, dict) else {}
    result: dict[str, Any] = {"podSelector": label_selector(spec.get("podSelector")),
                              "policyTypes": sorted(spec.get("policyTypes") or []),
                              "ingress": copy.deepcopy(spec.get("ingress") or [])}
    if spec.get("egress"):
        result["egress"] = copy.deepcopy(spec["egress"])
    return result


def managed(policy: dict[str, Any]) -> bool:
    return (policy["metadata"].get("labels") or {}).get(MANAGED_BY) == MANAGER


async def read_policy(p: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The policy `name` in `p["namespace"]`, or None when there is none (a missing namespace is an error)."""
    target = Target("get", RESOURCE, p["namespace"], name)
    try:
        return await call(p, target, "networking", "read_namespaced_network_policy", name, p["namespace"])
    except KubeError as exc:
        if exc.status != 404:
            raise fail(exc, target) from None
        if not await namespace_exists(p, p["namespace"]):
            raise namespace_missing(p["namespace"], target.describe()) from None
        return None


def refuse_unmanaged(p: dict[str, Any], name: str, verb: str) -> ActionError:
    return refuse(f'networkpolicy "{name}" in namespace "{p["namespace"]}" is not managed by incidentctl (no label '
                  f"{MANAGED_BY}={MANAGER}): refusing to {verb} it", "Refused")
