"""The simulator's object store: Kubernetes JSON objects keyed by resource, namespace and name.

It keeps what real clients observe: uid, resourceVersion, creationTimestamp, generation (bumped on spec
changes only), managedFields times (change-correlation reads them as "last updated") and Status errors.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from incidentctl.k8ssim.units import format_time

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    group: str  # "" is the core group
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How the API server names the resource in messages: `deployments.apps`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False),
    Resource("", "v1", "nodes", "Node", False),
    Resource("", "v1", "pods", "Pod", True),
    Resource("", "v1", "events", "Event", True),
    Resource("", "v1", "configmaps", "ConfigMap", True),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "services", "Service", True),
    Resource("apps", "v1", "deployments", "Deployment", True),
    Resource("apps", "v1", "replicasets", "ReplicaSet", True),
    Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
)
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {r.kind: r for r in RESOURCES}


class ApiError(Exception):
    """An error the API server answers with a `Status` object."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": self.details, "code": self.code}


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found',
                    {"name": name, "group": resource.group, "kind": resource.plural})


class Store:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._next_version = 1000

    @property
    def version(self) -> int:
        """The resourceVersion the next write gets: unchanged means nothing was written."""
        return self._next_version

    def _bump(self) -> str:
        self._next_version += 1
        return str(self._next_version - 1)

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        found = self._objects.get((resource.qualified, namespace if resource.namespaced else "", name))
        return copy.deepcopy(found) if found is not None else None

    def require(self, resource: Resource, namespace: str, name: str) -> Obj:
        found = self.get(resource, namespace, name)
        if found is None:
            raise not_found(resource, name)
        return found

    def list(self, resource: Resource, namespace: str | None = None) -> list[Obj]:
        rows = [obj for (plural, ns, _), obj in self._objects.items()
                if plural == resource.qualified and (namespace is None or ns == namespace)]
        rows.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return [copy.deepcopy(o) for o in rows]

    def _key(self, resource: Resource, obj: Obj) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return resource.qualified, meta.get("namespace", "") if resource.namespaced else "", meta["name"]

    def create(self, resource: Resource, obj: Obj, *, dry_run: bool = False, manager: str = "sim") -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise ApiError(422, "Invalid", f"{resource.kind} is invalid: metadata.name: Required value: name or "
                                           "generateName is required")
        if resource.namespaced and self.get(BY_KIND["Namespace"], "", meta.get("namespace", "")) is None:
            raise not_found(BY_KIND["Namespace"], meta.get("namespace", ""))
        key = self._key(resource, obj)
        if key in self._objects:
            raise ApiError(409, "AlreadyExists", f'{resource.qualified} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": resource.group, "kind": resource.plural})
        now = format_time(self.clock())
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now)
        meta["resourceVersion"] = self._bump()
        meta["generation"] = 1
        meta["managedFields"] = [{"manager": manager, "operation": "Update", "time": now}]
        if not dry_run:
            self._objects[key] = copy.deepcopy(obj)
        return obj

    def update(self, resource: Resource, obj: Obj, *, dry_run: bool = False, manager: str = "sim") -> Obj:
        """Replace an object; metadata the server owns is kept, generation moves only when spec changed."""
        obj = copy.deepcopy(obj)
        key = self._key(resource, obj)
        current = self._objects.get(key)
        if current is None:
            raise not_found(resource, obj["metadata"]["name"])
        meta = obj["metadata"]
        wanted_version = meta.get("resourceVersion")
        if wanted_version and wanted_version != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {resource.qualified} "{meta["name"]}": '
                                            "the object has been modified; please apply your changes to the latest "
                                            "version and try again")
        if obj == current:
            return copy.deepcopy(current)
        for owned in ("uid", "creationTimestamp"):
            meta[owned] = current["metadata"][owned]
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        spec_changed = obj.get("spec") != current.get("spec")
        meta["generation"] = current["metadata"].get("generation", 1) + (1 if spec_changed else 0)
        meta["resourceVersion"] = self._bump()
        if _without_status(obj) != _without_status(current):
            # Status writes by controllers are not "changes" a human made; only the rest counts as an update.
            fields = [f for f in current["metadata"].get("managedFields", []) if f.get("manager") != manager]
            meta["managedFields"] = [*fields, {"manager": manager, "operation": "Update",
                                               "time": format_time(self.clock())}]
        else:
            meta["managedFields"] = current["metadata"].get("managedFields", [])
        if not dry_run:
            self._objects[key] = copy.deepcopy(obj)
        return obj

    def delete(self, resource: Resource, namespace: str, name: str, *, dry_run: bool = False) -> Obj:
        found = self.require(resource, namespace, name)
        if not dry_run:
            del self._objects[self._key(resource, found)]
        return found


def _without_status(obj: Obj) -> Obj:
    trimmed = {k: v for k, v in obj.items() if k != "status"}
    trimmed["metadata"] = {k: v for k, v in obj["metadata"].items()
                           if k not in ("resourceVersion", "managedFields", "generation")}
    return trimmed
