"""The parameter vocabulary of the gke actions: which cluster and node pool, the bound, and the one schema shape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DEFAULT_API_TIMEOUT_S = 30.0
# No runbook bound may let a node pool grow past this many nodes in all its zones together.
HARD_MAX_NODES = 1000

PROJECT = {"type": "string", "pattern": "^[a-z][-a-z0-9]{4,28}[a-z0-9]$", "description": "Google Cloud project id"}
LOCATION = {"type": "string", "pattern": "^[a-z]+-[a-z]+[0-9]+(-[a-z])?$",
            "description": "the cluster's region (europe-west1) or zone (europe-west1-b)"}
CLUSTER = {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": 40}
NODE_POOL = {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$", "maxLength": 40}
DURATION = {"type": ["string", "number"], "description": "e.g. 30s, 15m"}
CONNECTION: dict[str, Any] = {
    "api_timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300, "default": DEFAULT_API_TIMEOUT_S,
                    "description": "seconds per API request before it counts as a timeout (retried)"},
}
WAIT: dict[str, Any] = {
    "timeout": {**DURATION, "default": "20m", "description": "how long to wait for the operation (GKE: minutes)"},
    "poll": {**DURATION, "default": "5s", "description": "how often the operation is read while waiting"},
}


def gke_params(properties: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    """A gke action's params schema: where (project, location, cluster), its own properties, the API timeout."""
    return {"type": "object",
            "properties": {"project": PROJECT, "location": LOCATION, "cluster": CLUSTER, **properties, **CONNECTION},
            "required": ["project", "location", "cluster", *required], "additionalProperties": False}


# The object mutating actions change: the node pool (incidentctl.dsl.allowed_changes.gke_refusal reads this shape).
NODE_POOL_LEASE = "gke/{project}/{location}/{cluster}/{node_pool}"
