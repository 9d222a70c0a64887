"""Just enough of the kubelet for runbooks to be tested for real: what runs on a node, and how it looks.

Pods start `start_delay_s` after scheduling. A ConfigMap/Secret reference that does not resolve is a
CreateContainerConfigError (configrefs.py); then what the image does (images.py) decides: Ready, a failing
readiness probe, CrashLoopBackOff with exponential back-off, OOMKilled (memory limit below the image's need) or
ImagePullBackOff. Pods on a NotReady node are not Ready. Events as the kubelet sends them, once per change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from incidentctl.k8ssim.conditions import new_condition, node_ready
from incidentctl.k8ssim.configrefs import missing_reference
from incidentctl.k8ssim.images import ImageTable
from incidentctl.k8ssim.store import BY_KIND, Obj, Store
from incidentctl.k8ssim.units import format_time, parse_quantity, parse_time

POD, NODE = BY_KIND["Pod"], BY_KIND["Node"]
# Waiting reasons that keep a pod in phase Pending: nothing of it has run yet.
NOT_STARTED = ("ContainerCreating", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError")
EventFn = Callable[..., None]


@dataclass
class Timing:
    start_delay_s: float = 0.3  # scheduled -> containers started
    backoff_base_s: float = 1.0  # CrashLoopBackOff: 1, 2, 4 ... seconds (real clusters: 10s doubling to 5m)
    backoff_cap_s: float = 30.0


class Kubelet:
    def __init__(self, store: Store, images: ImageTable, clock: Callable[[], datetime], timing: Timing,
                 event: EventFn) -> None:
        self.store = store
        self.images = images
        self.clock = clock
        self.timing = timing
        self.event = event

    def restarts_after(self, elapsed_s: float) -> int:
        """How many times a crashing container has restarted `elapsed_s` after its first start."""
        restarts, spent, delay = 0, 0.0, self.timing.backoff_base_s
        while spent + delay <= elapsed_s and restarts < 10_000:
            spent += delay
            restarts += 1
            delay = min(delay * 2, self.timing.backoff_cap_s)
        return restarts

    def sync(self, pod: Obj, node_name: str) -> None:
        """Bring a scheduled pod's status up to date: phase, conditions, container states, events."""
        pod = self.store.get(POD, pod["metadata"]["namespace"], pod["metadata"]["name"]) or pod
        node = self.store.get(NODE, "", node_name)
        now = self.clock()
        pod.setdefault("status", {})
        if not pod["status"].get("startTime"):  # created with spec.nodeName set: the scheduler never saw it
            pod["status"]["startTime"] = format_time(now)
        started = parse_time(pod["status"]["startTime"]) or now
        elapsed = (now - started).total_seconds() - self.timing.start_delay_s
        previous = {c["name"]: c for c in pod["status"].get("containerStatuses", [])}
        statuses = [self._container_status(c, elapsed, pod, previous.get(c["name"]))
                    for c in pod["spec"].get("containers", [])]
        all_ready = bool(statuses) and all(s["ready"] for s in statuses)
        node_ok = node is not None and node_ready(node)
        not_started = any(s["state"].get("waiting", {}).get("reason") in NOT_STARTED for s in statuses)
        phase = "Pending" if elapsed < 0 or not_started else "Running"
        stamp = format_time(now)
        ready = all_ready and node_ok
        unready = f"containers with unready status: [{' '.join(s['name'] for s in statuses if not s['ready'])}]"
        reason, message = (None, None) if ready else (
            ("NodeNotReady", f"node {node_name} is not ready") if not node_ok else ("ContainersNotReady", unready))
        old = {c["type"]: c for c in pod["status"].get("conditions", [])}
        conditions = [
            new_condition("PodScheduled", "True", None, None, old.get("PodScheduled"), stamp),
            new_condition("Initialized", "True", None, None, old.get("Initialized"), stamp),
            new_condition("ContainersReady", "True" if all_ready else "False",
                          None if all_ready else "ContainersNotReady", None if all_ready else unready,
                          old.get("ContainersReady"), stamp),
            new_condition("Ready", "True" if ready else "False", reason, message, old.get("Ready"), stamp),
        ]
        status = {**pod["status"], "phase": phase, "conditions": conditions, "containerStatuses": statuses,
                  "hostIP": "10.0.0.1", "podIP": "10.1.0.1"}
        for s in statuses:
            self._container_events(pod, s, previous.get(s["name"], {}))
        if pod.get("status") != status:
            pod["status"] = status
            self.store.update(POD, pod, manager="kubelet")

    def _container_events(self, pod: Obj, s: Obj, before: Obj) -> None:
        """One event per restart or state change, as the kubelet does, not one per reconcile pass."""
        waiting = s["state"].get("waiting", {})
        failing_probe = bool(s["state"].get("running")) and not s["ready"]
        if failing_probe and not (before.get("state", {}).get("running") and before.get("ready") is False):
            behaviour = self.images.get(s["image"])
            self.event(pod, "Warning", "Unhealthy", f"Readiness probe failed: {behaviour.probe_failure}")
        if (before.get("restartCount"), before.get("state", {}).get("waiting", {}).get("reason")) == (
                s["restartCount"], waiting.get("reason")):
            return
        if waiting.get("reason") == "CrashLoopBackOff":
            # One BackOff per restart, including restarts between two passes (or across seeded history).
            restarts = s["restartCount"] - (before.get("restartCount") or 0)
            self.event(pod, "Warning", "BackOff", f"Back-off restarting failed container {s['name']} in pod "
                                                  f"{pod['metadata']['name']}", times=max(1, restarts))
        elif waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
            self.event(pod, "Warning", "Failed", f'Failed to pull image "{s["image"]}": not found')
        elif waiting.get("reason") == "CreateContainerConfigError":
            self.event(pod, "Warning", "Failed", f"Error: {waiting['message']}")

    def _container_status(self, container: Obj, elapsed: float, pod: Obj, before: Obj | None) -> Obj:
        image = container.get("image", "")
        behaviour = self.images.get(image)
        base = {"name": container["name"], "image": image, "imageID": "", "restartCount": 0, "ready": False,
                "started": False, "lastState": {}}
        if elapsed < 0:
            return {**base, "state": {"waiting": {"reason": "ContainerCreating"}}}
        if behaviour.mode == "pull_error":
            reason = "ErrImagePull" if elapsed < self.timing.backoff_base_s else "ImagePullBackOff"
            return {**base, "state": {"waiting": {"reason": reason,
                                                  "message": f'Back-off pulling image "{image}"'}}}
        # The kubelet resolves env references when it creates the container; one already made keeps its values.
        created = bool(before and (before.get("state", {}).get("running") or before.get("restartCount")))
        missing = None if created else missing_reference(container, pod["metadata"]["namespace"],
                                                         self._keys_of(pod["metadata"]["namespace"]))
        if missing is not None:
            return {**base, "state": {"waiting": {"reason": "CreateContainerConfigError", "message": missing}}}
        crash_reason = None
        if behaviour.mode == "crash":
            crash_reason, exit_code = "Error", 1
        elif behaviour.mode == "oom":
            limit = container.get("resources", {}).get("limits", {}).get("memory")
            if limit is None or parse_quantity(limit) < parse_quantity(behaviour.memory):
                crash_reason, exit_code = "OOMKilled", 137
        started_at = format_time(self.clock() - timedelta(seconds=elapsed))
        if crash_reason is None:
            return {**base, "ready": behaviour.mode != "unready", "started": True,
                    "state": {"running": {"startedAt": started_at}}}
        restarts = self.restarts_after(elapsed)
        return {**base, "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": f"back-off restarting failed container={container['name']} "
                                                 f"pod={pod['metadata']['name']}"}},
                "lastState": {"terminated": {"reason": crash_reason, "exitCode": exit_code,
                                             "startedAt": started_at, "finishedAt": started_at}}}

    def _keys_of(self, namespace: str) -> Callable[[str, str], set[str] | None]:
        def keys(kind: str, name: str) -> set[str] | None:
            found = self.store.get(BY_KIND[kind], namespace, name)
            if found is None:
                return None
            return {*(found.get("data") or {}), *(found.get("binaryData") or {}), *(found.get("stringData") or {})}

        return keys
