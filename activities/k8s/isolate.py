"""`k8s.isolate`: contain a deployment with a NetworkPolicy that denies all ingress to its pods.

Policies only take effect where the cluster's network plugin enforces NetworkPolicy. `k8s.remove_isolation`
undoes this; network_policies.py has what both share (only policies incidentctl labelled are ever touched).
"""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.k8s.access import rule
from activities.k8s.api import Target, dry_run_kwargs, must, refuse
from activities.k8s.network_policies import (
    MANAGED_BY,
    MANAGER,
    POLICY_NAME,
    RESOURCE,
    label_selector,
    managed,
    policy_name,
    policy_spec,
    read_policy,
    refuse_unmanaged,
)
from activities.k8s.schemas import DEPLOYMENT_LEASE, NAME, NAMESPACE, k8s_params

INCIDENT_ANNOTATION = "incidentctl.dev/incident"
STEP_ANNOTATION = "incidentctl.dev/step"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _wanted_spec(pod_selector: dict[str, Any], allowed: list[str]) -> dict[str, Any]:
    ingress: list[dict[str, Any]] = []
    if allowed:
        ingress.append({"from": [{"namespaceSelector": {"matchExpressions": [
            {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": sorted(set(allowed))}]}}]})
    return {"podSelector": pod_selector, "policyTypes": ["Ingress"], "ingress": ingress}


@action(
    "k8s.isolate",
    kube_access=(rule("get deployments.apps"), rule("get,create,update networkpolicies.networking.k8s.io")),
    params=k8s_params({
        "namespace": NAMESPACE, "deployment": NAME, "name": POLICY_NAME,
        "allow_from_namespaces": {"type": "array", "items": NAMESPACE, "uniqueItems": True, "maxItems": 50,
                                  "default": [], "description": "namespaces still allowed in, e.g. monitoring"},
    }, ["namespace", "deployment"]),
    mutates=True, idempotent=True, lease=DEPLOYMENT_LEASE,
    description="Contain a deployment: a NetworkPolicy that denies all ingress to its pods (except from the "
                "namespaces in allow_from_namespaces).",
)
async def isolate(inp: ActionInput) -> dict[str, Any]:
    p, dry_run = inp.params, inp.dry_run
    namespace, name = p["namespace"], policy_name(p)
    deployment = await must(p, Target("get", "deployments.apps", namespace, p["deployment"]), "apps",
                            "read_namespaced_deployment", p["deployment"], namespace)
    pod_selector = label_selector(deployment.get("spec", {}).get("selector"))
    # An empty podSelector selects every pod in the namespace: never isolate more than the deployment.
    if not pod_selector:
        raise refuse(f"deployment {namespace}/{p['deployment']} has an empty selector: isolating it would isolate "
                     "every pod in the namespace", "Refused")
    wanted = _wanted_spec(pod_selector, p["allow_from_namespaces"])
    existing = await read_policy(p, name)
    before = policy_spec(existing["spec"]) if existing else None
    if existing is not None and not managed(existing):
        raise refuse_unmanaged(p, name, "replace")
    if before == policy_spec(wanted):
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
    after = policy_spec(written.get("spec"))
    return {"policy": name, "namespace": namespace, "pod_selector": pod_selector, "before": before, "after": after,
            "changed": before != after, "dry_run": dry_run}
