"""Just enough of kube-controller-manager and the scheduler for runbooks to be tested for real (the kubelet is
in kubelet.py).

- Deployment: a changed pod template makes a new ReplicaSet with the next `deployment.kubernetes.io/revision`;
  a template equal to an old ReplicaSet's (rollout undo) re-uses it and bumps its revision. Rolling update
  honours maxSurge/maxUnavailable, so a crash-looping new revision stalls with the old pods still serving.
- ReplicaSet: creates and deletes pods to match its replicas (not-ready and newest pods go first).
- Scheduler: Ready, schedulable nodes matching the pod's nodeSelector, fewest pods first; none left means
  Pending/Unschedulable with the scheduler's reasons.
- PodDisruptionBudget status, and Events for all of the above, deduplicated with a count like the real ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from incidentctl.k8ssim.conditions import condition, is_ready, new_condition, node_ready
from incidentctl.k8ssim.images import ImageTable
from incidentctl.k8ssim.kubelet import Kubelet, Timing
from incidentctl.k8ssim.selectors import label_selector_from_spec
from incidentctl.k8ssim.store import BY_KIND, Obj, Store
from incidentctl.k8ssim.units import format_time

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
DEPLOYMENT, REPLICA_SET, POD, NODE, EVENT, PDB = (BY_KIND[k] for k in (
    "Deployment", "ReplicaSet", "Pod", "Node", "Event", "PodDisruptionBudget"))
MANAGER = "kube-controller-manager"


# Kubernetes writes pod-template hashes and pod name suffixes in this alphabet (no vowels, no 0/1/3), so
# names never spell words; tools that tell a Deployment's pods by their shape rely on it.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_digest(text: str, length: int) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:length])


def template_hash(template: Obj) -> str:
    return safe_digest(json.dumps(template, sort_keys=True), 10)


def owned_by(obj: Obj, owner: Obj) -> bool:
    return any(ref.get("uid") == owner["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences", []))


def owner_ref(owner: Obj) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def revision(rs: Obj) -> int:
    try:
        return int(rs["metadata"].get("annotations", {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _percent_or_int(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = total * int(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


class Controllers:
    def __init__(self, store: Store, images: ImageTable, clock: Callable[[], datetime], timing: Timing) -> None:
        self.store = store
        self.images = images
        self.clock = clock
        self.timing = timing
        self._names = 0
        self.kubelet = Kubelet(store, images, clock, timing, self.event)
        self._progress: dict[str, tuple[str, int, datetime]] = {}

    # -- events -------------------------------------------------------------------------------------------

    def event(self, involved: Obj, kind: str, reason: str, message: str, times: int = 1) -> None:
        """Record an event `times` occurrences at once (a pass that catches up on several restarts)."""
        meta = involved["metadata"]
        namespace = meta.get("namespace") or "default"
        now = format_time(self.clock())
        digest = hashlib.sha256(f"{meta['uid']}/{reason}/{message}".encode()).hexdigest()[:12]
        name = f"{meta['name']}.{digest}"
        existing = self.store.get(EVENT, namespace, name)
        if existing is not None:
            existing["count"] = existing.get("count", 1) + times
            existing["lastTimestamp"] = now
            self.store.update(EVENT, existing, manager=MANAGER)
            return
        self.store.create(EVENT, {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"kind": involved["kind"], "name": meta["name"], "namespace": meta.get("namespace"),
                               "uid": meta["uid"], "apiVersion": involved["apiVersion"]},
            "reason": reason, "message": message, "type": kind, "count": times,
            "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "incidentctl-sim"},
        }, manager=MANAGER)

    # -- the loop -----------------------------------------------------------------------------------------

    def reconcile(self) -> None:
        for deployment in self.store.list(DEPLOYMENT):
            self._deployment(deployment)
        for rs in self.store.list(REPLICA_SET):
            self._replica_set(rs)
        for pod in self.store.list(POD):
            node_name = pod.get("spec", {}).get("nodeName") or self._schedule(pod)
            if node_name is not None:
                self.kubelet.sync(pod, node_name)
        for rs in self.store.list(REPLICA_SET):
            self._replica_set_status(rs)
        for deployment in self.store.list(DEPLOYMENT):
            self._deployment_status(deployment)
        for pdb in self.store.list(PDB):
            self._pdb_status(pdb)

    def settle(self, passes: int = 10) -> None:
        """Reconcile until nothing changes (a rollout takes several passes), at most `passes` times."""
        for _ in range(passes):
            before = self.store.version
            self.reconcile()
            if self.store.version == before:
                return

    def _save_status(self, resource: Any, obj: Obj, status: Obj) -> None:
        if obj.get("status") != status:
            obj["status"] = status
            self.store.update(resource, obj, manager=MANAGER)

    # -- deployments --------------------------------------------------------------------------------------

    def _owned_sets(self, deployment: Obj) -> list[Obj]:
        namespace = deployment["metadata"]["namespace"]
        return [rs for rs in self.store.list(REPLICA_SET, namespace) if owned_by(rs, deployment)]

    def _deployment(self, deployment: Obj) -> None:
        meta = deployment["metadata"]
        spec = deployment["spec"]
        template = spec["template"]
        pod_hash = template_hash(template)
        sets = self._owned_sets(deployment)
        newest = max((revision(rs) for rs in sets), default=0)
        current = next((rs for rs in sets if rs["metadata"].get("labels", {}).get(HASH_LABEL) == pod_hash), None)
        if current is None:
            current = self._new_replica_set(deployment, pod_hash, newest + 1)
            sets.append(current)
        elif revision(current) != newest:
            # Rollout undo: the old ReplicaSet becomes the newest revision again, as in real clusters.
            current["metadata"].setdefault("annotations", {})[REVISION] = str(newest + 1)
            current = self.store.update(REPLICA_SET, current, manager=MANAGER)
        wanted_revision = current["metadata"]["annotations"][REVISION]
        if meta.get("annotations", {}).get(REVISION) != wanted_revision:
            meta.setdefault("annotations", {})[REVISION] = wanted_revision
            deployment = self.store.update(DEPLOYMENT, deployment, manager=MANAGER)
        if spec.get("paused"):
            return
        self._roll(deployment, current, [rs for rs in sets if rs["metadata"]["uid"] != current["metadata"]["uid"]])

    def _new_replica_set(self, deployment: Obj, pod_hash: str, number: int) -> Obj:
        meta = deployment["metadata"]
        template = json.loads(json.dumps(deployment["spec"]["template"]))
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = json.loads(json.dumps(deployment["spec"]["selector"]))
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        annotations = {k: v for k, v in meta.get("annotations", {}).items() if k != REVISION}
        rs = self.store.create(REPLICA_SET, {
            "metadata": {"name": f"{meta['name']}-{pod_hash}", "namespace": meta["namespace"],
                         "labels": template["metadata"]["labels"], "ownerReferences": [owner_ref(deployment)],
                         "annotations": {**annotations, REVISION: str(number)}},
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }, manager=MANAGER)
        self.event(deployment, "Normal", "ScalingReplicaSet", f"Created new replica set {rs['metadata']['name']}")
        return rs

    def _scale(self, deployment: Obj, rs: Obj, replicas: int) -> None:
        before = rs["spec"].get("replicas", 0)
        if before == replicas:
            return
        rs["spec"]["replicas"] = replicas
        self.store.update(REPLICA_SET, rs, manager=MANAGER)
        direction = "up" if replicas > before else "down"
        self.event(deployment, "Normal", "ScalingReplicaSet",
                   f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {replicas}")

    def _pods_of(self, rs: Obj) -> list[Obj]:
        return [p for p in self.store.list(POD, rs["metadata"]["namespace"]) if owned_by(p, rs)]

    def _roll(self, deployment: Obj, current: Obj, old: list[Obj]) -> None:
        spec = deployment["spec"]
        desired = spec.get("replicas", 1)
        strategy = spec.get("strategy", {})
        old_active = [rs for rs in old if rs["spec"].get("replicas", 0) > 0]
        if strategy.get("type") == "Recreate":
            for rs in old_active:
                self._scale(deployment, rs, 0)
            if not any(self._pods_of(rs) for rs in old):
                self._scale(deployment, current, desired)
            return
        rolling = strategy.get("rollingUpdate", {})
        surge = _percent_or_int(rolling.get("maxSurge", "25%"), desired, round_up=True)
        unavailable = _percent_or_int(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        old_total = sum(rs["spec"].get("replicas", 0) for rs in old)
        current_replicas = current["spec"].get("replicas", 0)
        if not old_active or current_replicas > desired:
            self._scale(deployment, current, desired)
            return
        room = desired + surge - old_total
        self._scale(deployment, current, max(current_replicas, min(desired, room)))
        # As the real controller: never go below minAvailable, counting the new ReplicaSet's unready pods.
        new_pods = self._pods_of(current)
        all_pods = [p for rs in [current, *old] for p in self._pods_of(rs)]
        min_available = desired - unavailable
        new_unavailable = current["spec"].get("replicas", 0) - sum(is_ready(p) for p in new_pods)
        budget = len(all_pods) - min_available - new_unavailable
        if budget <= 0:
            return
        # Unhealthy old pods cost no availability: they go first.
        for rs in sorted(old_active, key=revision):
            cut = min(budget, rs["spec"]["replicas"], sum(not is_ready(p) for p in self._pods_of(rs)))
            if cut > 0:
                budget -= cut
                self._scale(deployment, rs, rs["spec"]["replicas"] - cut)
        removable = sum(is_ready(p) for p in all_pods) - min_available
        for rs in sorted(old_active, key=revision):
            cut = min(removable, rs["spec"]["replicas"])
            if cut > 0:
                removable -= cut
                self._scale(deployment, rs, rs["spec"]["replicas"] - cut)

    def _deployment_status(self, deployment: Obj) -> None:
        spec = deployment["spec"]
        desired = spec.get("replicas", 1)
        sets = self._owned_sets(deployment)
        pod_hash = template_hash(spec["template"])
        current = next((rs for rs in sets if rs["metadata"].get("labels", {}).get(HASH_LABEL) == pod_hash), None)
        if current is None:
            return
        pods = [p for rs in sets for p in self._pods_of(rs)]
        new_pods = self._pods_of(current)
        ready = sum(is_ready(p) for p in pods)
        updated_ready = sum(is_ready(p) for p in new_pods)
        complete = len(new_pods) == desired == len(pods) and updated_ready == desired
        now = format_time(self.clock())
        previous = condition(deployment, "Progressing") or {}
        rs_name = current["metadata"]["name"]
        # Progress = a new ReplicaSet or one more ready new pod; the deadline counts from the last of those.
        marker = self._progress.get(deployment["metadata"]["uid"])
        if marker is None or marker[0] != rs_name or marker[1] < updated_ready:
            marker = (rs_name, updated_ready, self.clock())
            self._progress[deployment["metadata"]["uid"]] = marker
        last_progress = format_time(marker[2])
        deadline = spec.get("progressDeadlineSeconds", 600)
        if complete:
            progressing = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
        elif self.clock() - marker[2] > timedelta(seconds=deadline):
            progressing = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        available = ready >= desired - _percent_or_int(
            spec.get("strategy", {}).get("rollingUpdate", {}).get("maxUnavailable", "25%"), desired, round_up=False)
        conditions = [
            new_condition("Available", "True" if available else "False",
                       "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                       "Deployment has minimum availability." if available
                       else "Deployment does not have minimum availability.", condition(deployment, "Available"), now),
            {**new_condition("Progressing", *progressing, previous or None, now), "lastUpdateTime": last_progress},
        ]
        status = {"observedGeneration": deployment["metadata"]["generation"], "replicas": len(pods),
                  "updatedReplicas": len(new_pods), "readyReplicas": ready, "availableReplicas": ready,
                  "unavailableReplicas": max(0, desired - ready),
                  "conditions": conditions}
        if progressing[1] == "ProgressDeadlineExceeded" and previous.get("reason") != "ProgressDeadlineExceeded":
            self.event(deployment, "Warning", "ProgressDeadlineExceeded", progressing[2])
        self._save_status(DEPLOYMENT, deployment, status)

    # -- replica sets and the scheduler ---------------------------------------------------------------------

    def _replica_set(self, rs: Obj) -> None:
        pods = self._pods_of(rs)
        wanted = rs["spec"].get("replicas", 0)
        for _ in range(wanted - len(pods)):
            self._new_pod(rs)
        if len(pods) > wanted:
            victims = sorted(pods, key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in victims[: len(pods) - wanted]:
                self.store.delete(POD, pod["metadata"]["namespace"], pod["metadata"]["name"])
                self.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    def _new_pod(self, rs: Obj) -> None:
        self._names += 1
        suffix = safe_digest(f"{rs['metadata']['uid']}/{self._names}", 5)
        template = rs["spec"]["template"]
        pod = self.store.create(POD, {
            "metadata": {**json.loads(json.dumps(template.get("metadata", {}))),
                         "name": f"{rs['metadata']['name']}-{suffix}", "namespace": rs["metadata"]["namespace"],
                         "ownerReferences": [owner_ref(rs)]},
            "spec": json.loads(json.dumps(template["spec"])),
            "status": {"phase": "Pending"},
        }, manager=MANAGER)
        self.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    def _schedule(self, pod: Obj) -> str | None:
        nodes = self.store.list(NODE)
        wanted = pod.get("spec", {}).get("nodeSelector") or {}
        # The first filter a node fails, as the scheduler reports it (one reason per node).
        refused: dict[str, int] = {}
        usable = []
        for node in nodes:
            labels = node["metadata"].get("labels", {})
            if node.get("spec", {}).get("unschedulable"):
                reason = "node(s) were unschedulable"
            elif not node_ready(node):
                reason = "node(s) were not ready"
            elif any(labels.get(key) != value for key, value in wanted.items()):
                reason = "node(s) didn't match Pod's node affinity/selector"
            else:
                usable.append(node)
                continue
            refused[reason] = refused.get(reason, 0) + 1
        if not usable:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(refused.items()))
            message = f"0/{len(nodes)} nodes are available: {reasons}."
            self.event(pod, "Warning", "FailedScheduling", message)
            # A fresh dict: _save_status writes only what differs from the stored status.
            self._save_status(POD, pod, {"phase": "Pending", "conditions": [
                new_condition("PodScheduled", "False", "Unschedulable", message, condition(pod, "PodScheduled"),
                           format_time(self.clock()))]})
            return None
        load = {n["metadata"]["name"]: 0 for n in usable}
        for other in self.store.list(POD):
            if other.get("spec", {}).get("nodeName") in load:
                load[other["spec"]["nodeName"]] += 1
        chosen = min(sorted(load), key=lambda name: load[name])
        pod["spec"]["nodeName"] = chosen
        pod["status"] = {"phase": "Pending", "startTime": format_time(self.clock())}
        self.store.update(POD, pod, manager="kube-scheduler")
        self.event(pod, "Normal", "Scheduled",
                   f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {chosen}")
        return chosen

    def _replica_set_status(self, rs: Obj) -> None:
        pods = self._pods_of(rs)
        ready = sum(is_ready(p) for p in pods)
        self._save_status(REPLICA_SET, rs, {"replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
                                            "fullyLabeledReplicas": len(pods),
                                            "observedGeneration": rs["metadata"]["generation"]})

    # -- disruption budgets -------------------------------------------------------------------------------

    def budget(self, pdb: Obj) -> Obj:
        """currentHealthy / desiredHealthy / disruptionsAllowed / expectedPods of a PodDisruptionBudget."""
        selector = label_selector_from_spec(pdb["spec"].get("selector"))
        pods = [p for p in self.store.list(POD, pdb["metadata"]["namespace"])
                if selector.matches(p["metadata"].get("labels", {}))]
        healthy = sum(is_ready(p) for p in pods)
        expected = len(pods)
        if "minAvailable" in pdb["spec"]:
            desired = _percent_or_int(pdb["spec"]["minAvailable"], expected, round_up=True)
        else:
            desired = expected - _percent_or_int(pdb["spec"].get("maxUnavailable", 0), expected, round_up=True)
        return {"currentHealthy": healthy, "desiredHealthy": max(0, desired), "expectedPods": expected,
                "disruptionsAllowed": max(0, healthy - max(0, desired)),
                "observedGeneration": pdb["metadata"]["generation"]}

    def _pdb_status(self, pdb: Obj) -> None:
        self._save_status(PDB, pdb, self.budget(pdb))
