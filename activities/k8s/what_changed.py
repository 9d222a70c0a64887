"""`k8s.what_changed`: fetch what may have changed before an alert and rank it (the ranking is in changes.py).

Secrets are read as whole objects because the typed client cannot ask for metadata only; everything but the
few metadata fields the correlation reads is dropped right after the list call, so no value (nor the
`last-applied-configuration` annotation, which holds a copy of the data) can reach the output or the history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.access import rule
from activities.k8s.api import KubeError, Target, call, duration_param, must
from activities.k8s.changes import correlate
from activities.k8s.fields import parse_time, selector_string
from activities.k8s.schemas import NAME, NAMESPACE, k8s_params

# Node events are recorded in the default namespace whatever namespace the incident is in.
NODE_EVENTS_NAMESPACE = "default"
MANAGED_FIELD_KEYS = ("manager", "operation", "time", "subresource")
METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"}


def _invalid(message: str) -> ActionError:
    return ActionError(f"k8s.what_changed: invalid params: {message}", type="InvalidParams", non_retryable=True)


def metadata_only(obj: Any) -> dict[str, Any]:
    """Name, namespace, creation time and who changed it when: nothing of data, stringData or annotations."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    managed = [{k: entry[k] for k in MANAGED_FIELD_KEYS if k in entry}
               for entry in metadata.get("managedFields") or [] if isinstance(entry, dict)]
    kept = {k: metadata[k] for k in ("name", "namespace", "creationTimestamp", "resourceVersion") if k in metadata}
    return {"metadata": {**kept, "managedFields": managed}}


def _items(listed: Any) -> list[dict[str, Any]]:
    items = listed.get("items") if isinstance(listed, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


async def _node_events(params: dict[str, Any]) -> list[dict[str, Any]]:
    """Node events, or none when the worker may not read the default namespace: Node objects carry the same
    Ready transitions and cordons, so the correlation loses only duplicates and rarer kubelet reasons."""
    try:
        listed = await call(params, Target("list", "events", NODE_EVENTS_NAMESPACE), "core", "list_namespaced_event",
                            NODE_EVENTS_NAMESPACE, field_selector="involvedObject.kind=Node")
    except KubeError as exc:
        if exc.status in (403, 404):
            return []
        raise
    return _items(listed)


@action(
    "k8s.what_changed",
    kube_access=(rule("get deployments.apps"), rule("list replicasets.apps"), rule("list events"),
                 rule("list configmaps"), rule("list secrets"), rule("list nodes", cluster_wide=True),
                 rule("list pods"), rule("list events", namespace=NODE_EVENTS_NAMESPACE)),
    params=k8s_params({
        "namespace": NAMESPACE,
        "deployment": {**NAME, "description": "the alerting Deployment (its rollouts, config and nodes rank first)"},
        "window": {"type": ["string", "number"], "default": "2h", "description": "how far before the alert to look"},
        "alert_time": {"type": "string", "minLength": 1,
                       "description": "RFC3339 time the alert fired (default: now)"},
    }, ["namespace"]),
    description="Rollouts, ConfigMap/Secret updates, scaling and node changes shortly before an alert, ranked as "
                "suspects (top_suspect first).",
)
async def what_changed(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    namespace = p["namespace"]
    window = timedelta(seconds=duration_param(p, "window"))
    if "alert_time" in p:
        alert_time = parse_time(p["alert_time"])
        if alert_time is None:
            raise _invalid(f"alert_time: {p['alert_time']!r} is not an RFC3339 time like 2024-05-01T12:00:00Z")
    else:
        alert_time = datetime.now(UTC)

    deployment = None
    if "deployment" in p:
        deployment = await must(p, Target("get", "deployments.apps", namespace, p["deployment"]), "apps",
                                "read_namespaced_deployment", p["deployment"], namespace)
    replica_sets = _items(await must(p, Target("list", "replicasets.apps", namespace), "apps",
                                     "list_namespaced_replica_set", namespace)) if deployment else []
    events = _items(await must(p, Target("list", "events", namespace), "core", "list_namespaced_event", namespace))
    if namespace != NODE_EVENTS_NAMESPACE:
        events += await _node_events(p)
    # Ask the API server for metadata only, so secret values never even reach the worker; trimming again below
    # covers servers that ignore the request and answer with whole objects.
    config_maps = [metadata_only(o) for o in _items(await must(
        p, Target("list", "configmaps", namespace), "core", "list_namespaced_config_map", namespace,
        _headers=METADATA_ONLY))]
    secrets = [metadata_only(o) for o in _items(await must(
        p, Target("list", "secrets", namespace), "core", "list_namespaced_secret", namespace,
        _headers=METADATA_ONLY))]
    nodes = _items(await must(p, Target("list", "nodes"), "core", "list_node"))
    pods: list[dict[str, Any]] = []
    selector = selector_string((deployment or {}).get("spec", {}).get("selector"))
    # An empty selector would list every pod in the namespace, which are not the workload's pods.
    if selector:
        pods = _items(await must(p, Target("list", "pods", namespace), "core", "list_namespaced_pod", namespace,
                                 label_selector=selector))
    return correlate(namespace=namespace, deployment=deployment, replica_sets=replica_sets, events=events,
                     config_maps=config_maps, secrets=secrets, nodes=nodes, pods=pods,
                     window_start=alert_time - window, alert_time=alert_time)
