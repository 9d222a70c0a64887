"""The parameter vocabulary of the k8s actions: connection params, names, selectors, and the one schema shape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DEFAULT_API_TIMEOUT_S = 15.0
# Bounds the pod lists an action reports (unhealthy_pods, top_pods): outputs land in workflow history.
MAX_PODS_REPORTED = 200

CONNECTION: dict[str, Any] = {
    # Null or "" means "the default", so runbooks can pass `${{ alert.labels.cluster }}` whether or not it is set.
    "kubeconfig": {"type": ["string", "null"],
                   "description": "kubeconfig path, or 'in-cluster' (default: $INCIDENTCTL_KUBECONFIG, $KUBECONFIG, "
                                  "~/.kube/config, else the pod's service account)"},
    "context": {"type": ["string", "null"], "description": "kubeconfig context (default: its current one), "
                                                           "gke://project/location/cluster for a GKE cluster, or "
                                                           "eks://region/cluster for an EKS cluster"},
    "api_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 120, "default": DEFAULT_API_TIMEOUT_S,
                    "description": "seconds per API request before it counts as a timeout (retried)"},
}
NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
NAMESPACE = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
SELECTOR = {"type": "string", "description": "label selector, e.g. app=cart,tier!=canary"}
DURATION = {"type": ["string", "number"], "description": "e.g. 30s, 5m"}


def k8s_params(properties: dict[str, Any], required: Iterable[str] = (), **keywords: Any) -> dict[str, Any]:
    """A k8s action's params schema: its own properties, then the connection params, and nothing else.

    `keywords` are further JSON Schema keywords of the object (e.g. `dependentRequired`).
    """
    return {"type": "object", "properties": {**properties, **CONNECTION}, "required": list(required),
            "additionalProperties": False, **keywords}


# The objects mutating actions change, in the shape the receiver derives targets from alert labels
# (k8s/<cluster>/<namespace>/<resource>/<name>; the kubeconfig context names the cluster).
DEPLOYMENT_LEASE = "k8s/{context}/{namespace}/deployments/{deployment}"
NODE_LEASE = "k8s/{context}//nodes/{node}"
PODS_LEASE = "k8s/{context}/{namespace}/pods/{selector}"
