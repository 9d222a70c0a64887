"""The broken thing an alert is about: `k8s/<cluster>/<namespace>/<resource>/<name>`.

Alerts of different rules (KubePodCrashLooping, KubeDeploymentReplicasMismatch, KubeDeploymentRolloutStuck)
about one Deployment name the same target, so the second joins the incident the first opened (held by the
target's TargetWorkflow). Alerts name the cluster by their `cluster` label; the leases of changes name it by
the API server the worker reaches, so the two are kept by separate TargetWorkflows. A runbook's
`trigger.target` overrides the derivation (a template over the alert) or turns it off (`false`).
"""

from __future__ import annotations

import re
from typing import Any

from incidentctl.dsl import expressions

# A Deployment's pod: <deployment>-<pod-template-hash>-<5 random>; the hash and suffix use Kubernetes'
# "safe" alphabet (no vowels, no 0/1/3), which keeps a StatefulSet's `web-0` or a name like `api-v2` out.
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_DEPLOYMENT_POD = re.compile(rf"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-[{_SAFE}]{{6,10}}-[{_SAFE}]{{5}}$")
_REPLICASET = re.compile(rf"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-[{_SAFE}]{{6,10}}$")
# Label -> resource, first match wins: the most specific workload the alert names.
WORKLOAD_LABELS = (("deployment", "deployments"), ("statefulset", "statefulsets"), ("daemonset", "daemonsets"))


def k8s_key(cluster: str, namespace: str, resource: str, name: str) -> str:
    return f"k8s/{cluster}/{namespace}/{resource}/{name}"


def derived_target(labels: dict[str, str]) -> str | None:
    """The target the labels name, or None when they name no workload or node (then no joining)."""
    cluster, namespace = labels.get("cluster", ""), labels.get("namespace", "")
    if namespace:
        for label, resource in WORKLOAD_LABELS:
            if labels.get(label):
                return k8s_key(cluster, namespace, resource, labels[label])
        if labels.get("replicaset") and (owner := _REPLICASET.match(labels["replicaset"])):
            return k8s_key(cluster, namespace, "deployments", owner["name"])
        if labels.get("pod") and (owner := _DEPLOYMENT_POD.match(labels["pod"])):
            return k8s_key(cluster, namespace, "deployments", owner["name"])
    if labels.get("node") and not labels.get("pod"):
        return k8s_key(cluster, "", "nodes", labels["node"])
    return None


def target_of(setting: Any, alert: dict[str, Any]) -> str | None:
    """`trigger.target` of the route (None: derived, False: none, else a template over `alert`)."""
    if setting is False:
        return None
    if setting is None:
        return derived_target(alert.get("labels") or {})
    try:
        rendered = expressions.render(str(setting), {"alert": alert})
    except expressions.ExpressionError:
        return None
    text = str(rendered or "").strip()
    return text or None
