"""Where a runbook may change things: the rule every mutating step's object meets before the step runs.

A runbook declares a `changes` block (plan.Changes): the clusters (kubeconfig contexts), namespaces and, for
objects outside any namespace, the cluster-scoped resources its mutating steps may change, optionally the
object names; in `changes.aws` the AWS regions and resources (`ec2/i-*`) its AWS steps may change; and in its
`gke` part the GKE clusters (`project/location/cluster`) and node pools. The object a step changes is its
action's lease template over the step's rendered params
(`k8s/{context}/{namespace}/deployments/{deployment}`), so an alert label can aim a step only inside what the
runbook allows. Protected namespaces are changed only by a runbook that lists them by exact name: no glob
reaches them, `*` included.

Pure and deterministic: the workflow applies it with the built-in protected namespaces before it schedules a
mutating activity; the activity wrapper applies it again with the worker's list (which may add more).
"""

from __future__ import annotations

import fnmatch
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from incidentctl.dsl.plan import AwsChanges, Changes

PROTECTED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
# The error type a refused step fails with (workflow and activity alike).
REFUSED = "ChangeNotAllowed"
# What a lease template looks like when it names a Kubernetes object: k8s/<context>/<namespace>/<resource>/<name>.
_K8S_PARTS = 5
# ... and an AWS resource: aws/<region>/<service>/<id or name>, the name possibly in parts (ecs/<cluster>/<service>).
_AWS_MIN_PARTS = 4


@dataclass(frozen=True)
class ChangedObject:
    """The object a mutating step changes, as its action's lease template names it."""

    cluster: str  # the kubeconfig context given; "" means the kubeconfig's current one
    namespace: str | None  # None: a cluster-scoped object (a node)
    resource: str
    name: str

    def describe(self) -> str:
        where = f"in namespace {self.namespace or '(none given)'}" if self.namespace is not None else "(cluster-scoped)"
        cluster = f"context {self.cluster}" if self.cluster else "the current kubeconfig context"
        return f"{self.resource}/{self.name} {where} on {cluster}"


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render_lease(segment: str, params: Mapping[str, Any]) -> str:
    """A lease template (or one segment of it) over a step's params; a missing or null param is empty."""
    return segment.format_map(_Missing({k: "" if v is None else v for k, v in params.items()}))


def template_fields(lease: str) -> set[str]:
    """The params a lease template reads (`{namespace}` -> namespace)."""
    return {name for _, name, _, _ in string.Formatter().parse(lease) if name}


def changed_object(lease: str, params: Mapping[str, Any]) -> ChangedObject | None:
    """The Kubernetes object a lease template names with these params; None for a lease of another kind.

    Each part is rendered on its own: a context (EKS: `arn:...:cluster/name`) or a selector may hold a `/`.
    """
    parts = lease.split("/")
    if len(parts) != _K8S_PARTS or parts[0] != "k8s":
        return None
    cluster, namespace, resource, name = (render_lease(part, params) for part in parts[1:])
    return ChangedObject(cluster=cluster, namespace=namespace if parts[2] else None, resource=resource, name=name)


@dataclass(frozen=True)
class AwsResource:
    """The AWS resource a mutating step changes, as its action's lease template names it."""

    region: str
    service: str  # ec2, autoscaling, ...
    name: str  # the instance id, the group's name, <cluster>/<service> for ECS, ...

    @property
    def path(self) -> str:
        """What `changes.aws.resources` globs match: `ec2/i-0abc`."""
        return f"{self.service}/{self.name}"

    def describe(self) -> str:
        return f"AWS {self.path} in region {self.region or '(none given)'}"


def changed_aws_resource(lease: str, params: Mapping[str, Any]) -> AwsResource | None:
    """The AWS resource a lease template names with these params; None for a lease of another kind."""
    parts = lease.split("/")
    if len(parts) < _AWS_MIN_PARTS or parts[0] != "aws":
        return None
    region, service, *name = (render_lease(part, params) for part in parts[1:])
    return AwsResource(region=region, service=service, name="/".join(name))


def _matches(value: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _listed(patterns: list[str]) -> str:
    return ", ".join(patterns) or "none"


def refusal(changes: Changes | None, obj: ChangedObject, protected: Collection[str] = PROTECTED_NAMESPACES,
            current_context: str | None = None) -> str | None:
    """Why the runbook may not change `obj`, in one sentence naming the object, its namespace and the rule;
    None when it may.

    `changes` None (a plan compiled before runbooks declared it) leaves only the protected namespaces.
    A step without a context goes to the kubeconfig's current one, which only the worker knows: pass its name
    as `current_context`, or None to leave the cluster rule to the worker.
    """
    what = obj.describe()
    listed = changes.namespaces if changes else []
    if obj.namespace in protected and obj.namespace not in listed:
        return (f"refused to change {what}: {obj.namespace} is a protected namespace, changed only by a runbook "
                f"whose changes.namespaces lists it by name (this one lists: {_listed(listed)})")
    if changes is None:
        return None
    if obj.namespace is None:
        if obj.resource not in changes.cluster_resources:
            return (f"refused to change {what}: the runbook's changes.cluster_resources does not list "
                    f"{obj.resource} (it lists: {_listed(changes.cluster_resources)})")
    elif not obj.namespace or not _matches(obj.namespace, changes.namespaces):
        return (f"refused to change {what}: namespace {obj.namespace or '(none given)'} is not in the runbook's "
                f"changes.namespaces ({_listed(changes.namespaces)})")
    cluster = obj.cluster or current_context
    if cluster is not None and not _matches(cluster, changes.clusters):
        return (f"refused to change {what}: context {cluster} is not in the runbook's changes.clusters "
                f"({_listed(changes.clusters)})")
    if not _matches(obj.name, changes.names):
        return (f"refused to change {what}: the name {obj.name} matches none of the runbook's changes.names "
                f"({_listed(changes.names)})")
    return None


def aws_refusal(changes: Changes | None, resource: AwsResource) -> str | None:
    """Why the runbook may not change `resource`, in one sentence naming it and the rule; None when it may.
    `changes` None (a plan compiled before runbooks declared it) refuses nothing, as for Kubernetes."""
    if changes is None:
        return None
    what = resource.describe()
    allowed: AwsChanges | None = changes.aws
    if allowed is None:
        return (f"refused to change {what}: the runbook's changes block has no aws part (changes.aws.regions, "
                f"changes.aws.resources)")
    if not resource.region or not _matches(resource.region, allowed.regions):
        return (f"refused to change {what}: region {resource.region or '(none given)'} is not in the runbook's "
                f"changes.aws.regions ({_listed(allowed.regions)})")
    if not _matches(resource.path, allowed.resources):
        return (f"refused to change {what}: {resource.path} matches none of the runbook's changes.aws.resources "
                f"({_listed(allowed.resources)})")
    return None


def step_refusal(changes: Changes | None, lease: str | None, params: Mapping[str, Any]) -> str | None:
    """The workflow's check of a mutating step about to run: the runbook's own declaration and the built-in
    protected namespaces. Plans from before the declaration (`changes` None) run as they always did."""
    if changes is None or lease is None:
        return None
    pool = changed_node_pool(lease, params)
    if pool is not None:
        return gke_refusal(changes, pool)
    obj = changed_object(lease, params)
    if obj is not None:
        return refusal(changes, obj)
    resource = changed_aws_resource(lease, params)
    return aws_refusal(changes, resource) if resource is not None else None


# ---- GKE node pools: the `changes.gke` part, checked the same way (workflow before scheduling, action wrapper)

# What a lease template looks like when it names a GKE node pool: gke/<project>/<location>/<cluster>/<node_pool>.
_GKE_PARTS = 5


@dataclass(frozen=True)
class ChangedNodePool:
    """The GKE node pool a mutating gke step changes, as its action's lease template names it."""

    cluster: str  # project/location/cluster
    node_pool: str

    def describe(self) -> str:
        return f"node pool {self.node_pool} of GKE cluster {self.cluster}"


def changed_node_pool(lease: str, params: Mapping[str, Any]) -> ChangedNodePool | None:
    """The node pool a lease template names with these params; None for a lease of another kind."""
    parts = lease.split("/")
    if len(parts) != _GKE_PARTS or parts[0] != "gke":
        return None
    project, location, cluster, node_pool = (render_lease(part, params) for part in parts[1:])
    return ChangedNodePool(cluster=f"{project}/{location}/{cluster}", node_pool=node_pool)


def gke_refusal(changes: Changes | None, pool: ChangedNodePool) -> str | None:
    """Why the runbook may not change `pool`, in one sentence; None when it may. `changes` None (no declaration at
    all: a plan from before the block) leaves it allowed, as for Kubernetes objects; a declaration without a `gke`
    part allows no node pool."""
    if changes is None:
        return None
    what = pool.describe()
    if changes.gke is None:
        return f"refused to change {what}: the runbook's changes block has no gke part"
    if not _matches(pool.cluster, changes.gke.clusters):
        return (f"refused to change {what}: {pool.cluster} is not in the runbook's changes.gke.clusters "
                f"({_listed(changes.gke.clusters)})")
    if not _matches(pool.node_pool, changes.gke.node_pools):
        return (f"refused to change {what}: {pool.node_pool} matches none of the runbook's changes.gke.node_pools "
                f"({_listed(changes.gke.node_pools)})")
    return None
