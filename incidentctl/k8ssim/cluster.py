"""The simulated cluster: store + controllers + the API semantics our actions rely on.

Beyond CRUD: label and field selectors, strategic-merge/merge/JSON patches, server-side dry run
(`dryRun=All` computes and answers but persists nothing), the eviction subresource checked against
PodDisruptionBudgets, pod logs with tail/limit/previous, metrics.k8s.io when "installed", RBAC-style 403s per
bearer token, and injected faults (latency, 5xx) for retry tests.
"""

from __future__ import annotations

import contextlib
import copy
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from incidentctl.k8ssim.conditions import condition, is_ready
from incidentctl.k8ssim.controllers import NODE, POD, Controllers
from incidentctl.k8ssim.images import ImageTable, cpu_usage
from incidentctl.k8ssim.kubelet import Timing
from incidentctl.k8ssim.patching import PatchError, apply_patch
from incidentctl.k8ssim.selectors import (
    SelectorError,
    label_selector_from_spec,
    parse_field_selector,
    parse_label_selector,
)
from incidentctl.k8ssim.store import BY_KIND, ApiError, Obj, Resource, Store, not_found
from incidentctl.k8ssim.units import format_cpu, format_memory, format_time, parse_quantity

REQUESTS_KEPT = 10_000


@dataclass
class Identity:
    user: str
    denied: set[str] = field(default_factory=set)  # "verb resource", e.g. "patch deployments.apps", "* pods/eviction"

    def may(self, verb: str, resource: str) -> bool:
        return not ({f"{verb} {resource}", f"* {resource}", f"{verb} *", "* *"} & self.denied)


@dataclass
class Fault:
    """Answer the next `count` matching requests with `status` (0: carry them out) after `delay_s`; with
    `answer_delay_s`, carry them out first and hold the answer that long (a client that dies meanwhile never
    learns its change was made)."""

    count: int
    status: int = 503
    delay_s: float = 0.0
    path_contains: str = ""
    method: str = ""
    answer_delay_s: float = 0.0


class Cluster:
    def __init__(self, timing: Timing | None = None) -> None:
        self._shift = timedelta()
        self.store = Store(self.now)
        self.images = ImageTable()
        self.controllers = Controllers(self.store, self.images, self.now, timing or Timing())
        self.tokens: dict[str, Identity] = {}
        # Tokens that change on every request (an EKS token is a fresh presigned URL): accepted by prefix, unchecked.
        self.token_prefixes: dict[str, Identity] = {}
        self.faults: list[Fault] = []
        self.metrics_server = False
        # What clients sent, for tests to check dryRun and content types; bounded for long `dev` sessions.
        self.requests: deque[Obj] = deque(maxlen=REQUESTS_KEPT)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._shift

    @contextlib.contextmanager
    def at(self, ago: timedelta) -> Iterator[None]:
        """Seed history: everything done inside happens `ago` in the past (and controllers run then)."""
        previous, self._shift = self._shift, -ago
        try:
            self.controllers.settle()
            yield
            self.controllers.settle()
        finally:
            self._shift = previous

    # -- auth -----------------------------------------------------------------------------------------------

    def identity(self, token: str | None) -> Identity:
        if token is not None and token in self.tokens:
            return self.tokens[token]
        prefixed = next((who for prefix, who in self.token_prefixes.items() if token and token.startswith(prefix)),
                        None)
        if prefixed is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return prefixed

    def authorize(self, who: Identity, verb: str, resource: Resource, subresource: str, namespace: str,
                  name: str) -> None:
        target = f"{resource.plural}/{subresource}" if subresource else resource.plural
        if who.may(verb, f"{target}.{resource.group}" if resource.group else target):
            return
        subject = f'{resource.qualified} "{name}" is forbidden' if name else f"{resource.qualified} is forbidden"
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        raise ApiError(403, "Forbidden", f'{subject}: User "{who.user}" cannot {verb} resource "{target}" in API '
                                         f'group "{resource.group}"{where}',
                       {"name": name, "group": resource.group, "kind": resource.plural})

    def take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.count > 0 and fault.path_contains in path and fault.method in ("", method):
                fault.count -= 1
                return fault
        return None

    # -- CRUD -----------------------------------------------------------------------------------------------

    def list(self, resource: Resource, namespace: str | None, label_selector: str = "",
             field_selector: str = "") -> Obj:
        try:
            labels = parse_label_selector(label_selector)
            fields = parse_field_selector(field_selector)
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None
        self.controllers.reconcile()
        items = [o for o in self.store.list(resource, namespace)
                 if labels.matches(o["metadata"].get("labels", {})) and fields.matches(o)]
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return {"apiVersion": resource.api_version, "kind": f"{resource.kind}List",
                "metadata": {"resourceVersion": str(len(items))}, "items": items}

    def get(self, resource: Resource, namespace: str, name: str) -> Obj:
        self.controllers.reconcile()
        return self.store.require(resource, namespace, name)

    def create(self, resource: Resource, namespace: str, body: Obj, *, dry_run: bool = False) -> Obj:
        if resource.namespaced:
            body.setdefault("metadata", {}).setdefault("namespace", namespace)
            if body["metadata"]["namespace"] != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                                  "namespace sent on the request")
        self._validate(resource, body)
        created = self.store.create(resource, body, dry_run=dry_run, manager="incidentctl")
        if not dry_run:
            self.controllers.reconcile()
        return created

    def replace(self, resource: Resource, namespace: str, name: str, body: Obj, *, dry_run: bool = False) -> Obj:
        self.store.require(resource, namespace, name)
        self._validate(resource, body)
        updated = self.store.update(resource, body, dry_run=dry_run, manager="incidentctl")
        if not dry_run:
            self.controllers.reconcile()
        return updated

    def patch(self, resource: Resource, namespace: str, name: str, body: Any, content_type: str, *,
              dry_run: bool = False) -> Obj:
        current = self.store.require(resource, namespace, name)
        try:
            patched = apply_patch(current, body, content_type)
        except PatchError as exc:
            raise ApiError(exc.status, "BadRequest" if exc.status == 400 else "UnsupportedMediaType"
                           if exc.status == 415 else "Invalid", str(exc)) from None
        if not isinstance(patched.get("metadata"), dict):
            raise ApiError(422, "Invalid", f'{resource.kind} "{name}" is invalid: metadata: Required value')
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        for fixed in ("name", "namespace", "uid"):
            if patched["metadata"].get(fixed) != current["metadata"].get(fixed):
                raise ApiError(422, "Invalid", f"{resource.kind} \"{name}\" is invalid: metadata.{fixed}: "
                                               "Invalid value: field is immutable")
        self._validate(resource, patched)
        updated = self.store.update(resource, patched, dry_run=dry_run, manager="incidentctl")
        if not dry_run:
            self.controllers.reconcile()
        return updated

    def delete(self, resource: Resource, namespace: str, name: str, *, dry_run: bool = False) -> Obj:
        found = self.store.delete(resource, namespace, name, dry_run=dry_run)
        if not dry_run:
            self._collect_garbage()
            self.controllers.reconcile()
        return found

    def _collect_garbage(self) -> None:
        """Owner gone -> dependents go (background cascading deletion)."""
        alive = True
        while alive:
            alive = False
            uids = {o["metadata"]["uid"] for r in (BY_KIND["Deployment"], BY_KIND["ReplicaSet"])
                    for o in self.store.list(r)}
            for resource in (BY_KIND["ReplicaSet"], POD):
                for obj in self.store.list(resource):
                    refs = obj["metadata"].get("ownerReferences", [])
                    if refs and not any(ref["uid"] in uids for ref in refs):
                        self.store.delete(resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                        alive = True

    def _validate(self, resource: Resource, body: Obj) -> None:
        if resource.kind != "Deployment":
            return
        spec = body.get("spec", {})
        labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
        try:
            selector = label_selector_from_spec(spec.get("selector"))
        except SelectorError as exc:
            raise ApiError(422, "Invalid", f"Deployment is invalid: spec.selector: {exc}") from None
        if not spec.get("selector") or not selector.matches(labels):
            raise ApiError(422, "Invalid", f'Deployment.apps "{body["metadata"]["name"]}" is invalid: '
                                           "spec.template.metadata.labels: Invalid value: `selector` does not match "
                                           "template `labels`")
        replicas = spec.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Deployment.apps "{body["metadata"]["name"]}" is invalid: '
                                           f"spec.replicas: Invalid value: {replicas}: must be greater than or equal "
                                           "to 0")

    # -- subresources -----------------------------------------------------------------------------------------

    def evict(self, namespace: str, name: str, *, dry_run: bool = False) -> Obj:
        pod = self.get(POD, namespace, name)
        for pdb in self.store.list(BY_KIND["PodDisruptionBudget"], namespace):
            if not label_selector_from_spec(pdb["spec"].get("selector")).matches(pod["metadata"].get("labels", {})):
                continue
            budget = self.controllers.budget(pdb)
            healthy_enough = budget["currentHealthy"] >= budget["desiredHealthy"]
            allowed = budget["disruptionsAllowed"] > 0 if is_ready(pod) else healthy_enough
            if not allowed:
                pdb_name = pdb["metadata"]["name"]
                raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption "
                                                       "budget.",
                               {"causes": [{"reason": "DisruptionBudget",
                                            "message": f"The disruption budget {pdb_name} needs "
                                                       f"{budget['desiredHealthy']} healthy pods and has "
                                                       f"{budget['currentHealthy']} currently"}]})
        if not dry_run:
            self.store.delete(POD, namespace, name)
            self.controllers.event(pod, "Normal", "Killing", "Stopping container (evicted)")
            self.controllers.reconcile()
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def pod_log(self, namespace: str, name: str, container: str | None, previous: bool,
                tail_lines: int | None, limit_bytes: int | None) -> str:
        pod = self.get(POD, namespace, name)
        names = [c["name"] for c in pod["spec"].get("containers", [])]
        if container is None:
            if len(names) != 1:
                raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, choose one "
                                                  f"of: [{' '.join(names)}]")
            container = names[0]
        if container not in names:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        status = next((s for s in pod.get("status", {}).get("containerStatuses", []) if s["name"] == container), None)
        if status is None or "waiting" in status["state"] and not status.get("lastState"):
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: '
                                              f'{(status or {}).get("state", {}).get("waiting", {}).get("reason", "")}')
        behaviour = self.images.get(status["image"])
        if previous:
            if not status.get("lastState"):
                raise ApiError(400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" '
                                                  "not found")
            lines = [*behaviour.log, *behaviour.crash_log]
        elif status["state"].get("running"):
            lines = behaviour.log
        else:
            lines = [*behaviour.log, *behaviour.crash_log]
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        text = "".join(f"{line}\n" for line in lines)
        return text.encode()[:limit_bytes].decode(errors="ignore") if limit_bytes else text

    def pod_metrics(self, namespace: str | None) -> Obj:
        if not self.metrics_server:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self.controllers.reconcile()
        items = []
        for pod in self.store.list(POD, namespace):
            running = [s for s in pod.get("status", {}).get("containerStatuses", []) if s["state"].get("running")]
            if not running:
                continue
            specs = {c["name"]: c for c in pod["spec"].get("containers", [])}
            containers = []
            for status in running:
                behaviour = self.images.get(status["image"])
                cpu = cpu_usage(behaviour, specs.get(status["name"], {}))
                containers.append({"name": status["name"],
                                   "usage": {"cpu": format_cpu(cpu),
                                             "memory": format_memory(parse_quantity(behaviour.memory))}})
            items.append({"metadata": {"name": pod["metadata"]["name"], "namespace": pod["metadata"]["namespace"],
                                       "labels": pod["metadata"].get("labels", {})},
                          "timestamp": format_time(self.now()), "window": "30s", "containers": containers})
        return {"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items}

    # -- what scenarios and tests change behind the API's back ----------------------------------------------

    def set_node_condition(self, name: str, kind: str, status: str, reason: str = "", message: str = "") -> Obj:
        node = self.store.get(NODE, "", name)
        if node is None:
            raise not_found(NODE, name)
        previous = condition(node, kind)
        conditions = [c for c in node.get("status", {}).get("conditions", []) if c.get("type") != kind]
        stamp = format_time(self.now())
        transition = stamp if previous is None or previous.get("status") != status else \
            previous.get("lastTransitionTime", stamp)
        conditions.append({"type": kind, "status": status, "reason": reason or kind, "message": message,
                           "lastHeartbeatTime": stamp, "lastTransitionTime": transition})
        node.setdefault("status", {})["conditions"] = sorted(conditions, key=lambda c: c["type"])
        node = self.store.update(NODE, node, manager="kubelet")
        if kind == "Ready" and (previous or {}).get("status") != status:
            self.controllers.event(node, "Normal" if status == "True" else "Warning",
                                   "NodeReady" if status == "True" else "NodeNotReady",
                                   f"Node {name} status is now: {'NodeReady' if status == 'True' else 'NodeNotReady'}")
        self.controllers.reconcile()
        return copy.deepcopy(node)
