"""Which workload an alert is about: alerts name pods (KubePodCrashLooping), runbooks act on deployments."""

from __future__ import annotations

from typing import Any

from activities.base import ActionInput, action
from activities.errors import ActionError
from activities.k8s.access import rule
from activities.k8s.api import Target, must
from activities.k8s.fields import owner_ref, selector_string
from activities.k8s.schemas import NAME, NAMESPACE, k8s_params

_APIS = {"ReplicaSet": ("apps", "read_namespaced_replica_set", "replicasets.apps"),
         "Deployment": ("apps", "read_namespaced_deployment", "deployments.apps")}


@action(
    "k8s.workload_of",
    kube_access=(rule("get pods"), rule("get replicasets.apps"), rule("get deployments.apps")),
    params=k8s_params({"namespace": NAMESPACE, "pod": NAME}, ["namespace", "pod"]),
    description="Follow a pod's owner references up to its Deployment (or the top controller) and its selector.",
)
async def workload_of(inp: ActionInput) -> dict[str, Any]:
    p = inp.params
    namespace = p["namespace"]
    obj = await must(p, Target("get", "pods", namespace, p["pod"]), "core", "read_namespaced_pod", p["pod"],
                     namespace)
    chain = [f"Pod/{p['pod']}"]
    while (owner := owner_ref(obj)) is not None and owner.get("kind") in _APIS:
        api, method, resource = _APIS[owner["kind"]]
        obj = await must(p, Target("get", resource, namespace, owner["name"]), api, method, owner["name"], namespace)
        chain.append(f"{owner['kind']}/{owner['name']}")
    kind = obj.get("kind") or chain[-1].split("/")[0]
    if owner is not None:  # a controller we do not follow (StatefulSet, DaemonSet, Job): name it, stop there
        chain.append(f"{owner['kind']}/{owner['name']}")
        kind = owner["kind"]
    name = chain[-1].split("/", 1)[1]
    if kind != "Deployment":
        raise ActionError(f"pod {namespace}/{p['pod']} belongs to {chain[-1]}, not a Deployment; this "
                          "runbook only remediates Deployments", {"chain": chain}, type="NotADeployment",
                          non_retryable=True)
    return {"namespace": namespace, "kind": kind, "name": name, "chain": chain,
            "selector": selector_string(obj["spec"].get("selector"))}
