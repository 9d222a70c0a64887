"""A worker SIGKILLed in the middle of a Kubernetes change (a rollout undo, a memory raise, a pod delete, a node
drain): the change happens exactly once and the incident goes on.

Through the real wire: a Temporal dev server, the simulated API server, and workers as separate processes. The
simulator holds the action's PATCH for a few seconds (a `/_sim/faults` delay) and the test kills the worker while
it is in flight, at either moment a crash can hit:
- `applied`: the API server has made the change and only its answer is held; the dead worker never learns it.
  The retry finds the change already made by this step and must not make it again (undo twice flips back to
  the bad revision; a memory factor applied twice compounds).
- `not_applied`: the request dies before the API server carries it out; the retry must make the change.
Either way a second worker takes over once the step's heartbeat timeout notices the dead one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.devserver import DevServer
from incidentctl.dsl.plan import DEFAULT_HEARTBEAT_S
from incidentctl.library import compile_text
from incidentctl.process import log_tail
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[1]
PATCH_HELD_S = 8.0
# From the kill to the step going on: the heartbeat timeout, the retry's first interval, a second worker's start
# and the workflow task moving off the dead worker's sticky queue; loose on a loaded 2-core machine.
GOES_ON_WITHIN_S = DEFAULT_HEARTBEAT_S + 60
# From the start to the change's request: the worker process's start (imports), the admission, the steps before.
REACHES_S = 150

UNDO_RUNBOOK = """
name: crash-undo
version: 1
changes: {clusters: ["*"], namespaces: [shop]}
steps:
  - id: undo
    action: k8s.rollout_undo
    params: {namespace: shop, deployment: cart}
  - id: after
    action: util.echo
    params: {message: went on}
"""

RAISE_RUNBOOK = """
name: crash-raise
version: 1
changes: {clusters: ["*"], namespaces: [shop]}
steps:
  - id: raise
    action: k8s.set_resources
    params: {namespace: shop, deployment: search, memory_factor: 1.5, max_memory: 2Gi}
  - id: after
    action: util.echo
    params: {message: went on}
"""


def _worker(server: DevServer, task_queue: str, kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "--address", server.address, "--task-queue", task_queue],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "INCIDENTCTL_KUBECONFIG": str(kubeconfig)},
    )


def _patches(sim: Any, deployment: str) -> list[dict[str, Any]]:
    path = f"/apis/apps/v1/namespaces/shop/deployments/{deployment}"
    return [r for r in sim.requests() if r["method"] == "PATCH" and r["path"] == path]


def _pod_deletes(sim: Any) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["method"] == "DELETE" and "/namespaces/shop/pods/" in r["path"]]


CRASH_MOMENTS = ["applied", "not_applied"]


async def _kill_mid_patch(dev_server: DevServer, client: Client, sim: Any, runbook: str, deployment: str,
                          moment: str, tmp_path: Path, unique: str) -> tuple[dict[str, Any], float]:
    """Run `runbook`, SIGKILL its worker while the deployment's PATCH is held, let a second worker finish.
    (summary, seconds from the kill to the changing step's success)."""
    return await _kill_mid_change(dev_server, client, sim, runbook, moment, tmp_path, unique, "PATCH",
                                  f"/deployments/{deployment}", lambda: _patches(sim, deployment))


async def _kill_mid_change(dev_server: DevServer, client: Client, sim: Any, runbook: str, moment: str,
                           tmp_path: Path, unique: str, method: str, path_contains: str,
                           changes: Callable[[], list[dict[str, Any]]]) -> tuple[dict[str, Any], float]:
    """Run `runbook`, SIGKILL its worker while its first `method` request to `path_contains` is held, let a second
    worker finish. (summary, seconds from the kill to the changing step's success)."""
    task_queue = f"k8s-kill-{unique}"
    held = {"answer_delay_s": PATCH_HELD_S} if moment == "applied" else {"delay_s": PATCH_HELD_S}
    sim.control("faults", {"count": 1, "status": 0, "method": method, "path_contains": path_contains, **held})
    first = _worker(dev_server, task_queue, sim.kubeconfig, tmp_path / "worker1.log")
    second = None
    try:
        started = await incidents.start_incident(client, compile_text(runbook, "crash.yaml"), key=unique,
                                                 task_queue=task_queue)
        try:
            await eventually(lambda: asyncio.to_thread(changes), lambda found: len(found) == 1, timeout=REACHES_S)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe first worker's log ends:\n{log_tail(tmp_path / 'worker1.log', 40)}"
                                 ) from None
        os.killpg(first.pid, signal.SIGKILL)  # the PATCH is in flight: no graceful shutdown, a crash
        killed_at = time.time()
        first.wait(timeout=10)
        second = _worker(dev_server, task_queue, sim.kubeconfig, tmp_path / "worker2.log")
        summary = await incidents.wait_for_runbook(client, started.incident_id, timeout=240)
        timeline = await incidents.incident_timeline(client, started.incident_id)
    finally:
        for process in (first, second):
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
    changed = next(e for e in timeline if e["kind"] == "step_succeeded" and e["step"] != "after")
    went_on = datetime.fromisoformat(changed["at"]).timestamp() - killed_at
    print(f"{runbook.split()[1]} ({moment}): SIGKILL -> step succeeded in {went_on:.1f}s")  # for the record
    return summary, went_on


@pytest.mark.parametrize("moment", CRASH_MOMENTS)
async def test_a_rollout_undo_interrupted_by_a_crash_happens_exactly_once(
        dev_server: DevServer, client: Client, k8s_sim: Any, tmp_path: Path, unique: str, moment: str) -> None:
    with k8s_sim("bad-rollout") as sim:
        summary, went_on = await _kill_mid_patch(dev_server, client, sim, UNDO_RUNBOOK, "cart", moment, tmp_path,
                                                 unique)
        patches = _patches(sim, "cart")
        cart = sim.get("/apis/apps/v1/namespaces/shop/deployments/cart")
    assert summary["outcome"] == "succeeded", summary
    assert summary["steps"]["after"]["output"]["message"] == "went on"
    # Undone once: twice would have flipped the deployment back to the crashing 1.4.3.
    assert [c["image"] for c in cart["spec"]["template"]["spec"]["containers"]] == ["shop/cart:1.4.2"]
    output = summary["steps"]["undo"]["output"]
    if moment == "applied":
        # The killed attempt's PATCH only: the retry found its own mark.
        assert len(patches) == 1 and output["note"] == "already rolled back by this step"
    else:
        assert len(patches) == 2 and output["changed"] is True and "note" not in output
    assert DEFAULT_HEARTBEAT_S <= went_on < GOES_ON_WITHIN_S


@pytest.mark.parametrize("moment", CRASH_MOMENTS)
async def test_a_memory_raise_interrupted_by_a_crash_is_applied_once_not_compounded(
        dev_server: DevServer, client: Client, k8s_sim: Any, tmp_path: Path, unique: str, moment: str) -> None:
    with k8s_sim("oom") as sim:
        summary, went_on = await _kill_mid_patch(dev_server, client, sim, RAISE_RUNBOOK, "search", moment, tmp_path,
                                                 unique)
        patches = _patches(sim, "search")
        search = sim.get("/apis/apps/v1/namespaces/shop/deployments/search")
    assert summary["outcome"] == "succeeded", summary
    limit = search["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
    assert limit == "384Mi", "256Mi x 1.5 once, not 576Mi"
    assert len(patches) == (1 if moment == "applied" else 2)
    output = summary["steps"]["raise"]["output"]
    # Either way the step reports where it started, so a rollback would restore 256Mi.
    assert output["before"]["resources"]["search"]["limits"]["memory"] == "256Mi"
    assert output["after"]["resources"]["search"]["limits"]["memory"] == "384Mi"
    assert output["changed"] is True
    assert output.get("note") == ("already set by this step" if moment == "applied" else None)
    assert DEFAULT_HEARTBEAT_S <= went_on < GOES_ON_WITHIN_S


DELETE_RUNBOOK = """
name: crash-delete
version: 1
changes: {clusters: ["*"], namespaces: [shop]}
steps:
  - id: delete
    action: k8s.delete_pods
    params: {namespace: shop, selector: app=cart}
  - id: after
    action: util.echo
    params: {message: went on}
"""


@pytest.mark.parametrize("moment", CRASH_MOMENTS)
async def test_a_pod_delete_interrupted_by_a_crash_deletes_its_victims_once_never_their_replacements(
        dev_server: DevServer, client: Client, k8s_sim: Any, tmp_path: Path, unique: str, moment: str) -> None:
    with k8s_sim("bad-rollout") as sim:
        pods = sim.get("/api/v1/namespaces/shop/pods")["items"]
        [crashing] = [p["metadata"]["name"] for p in pods if p["spec"]["containers"][0]["image"] == "shop/cart:1.4.3"]
        summary, went_on = await _kill_mid_change(dev_server, client, sim, DELETE_RUNBOOK, moment, tmp_path, unique,
                                                  "DELETE", "/namespaces/shop/pods/", lambda: _pod_deletes(sim))
        deletes = [r["path"].rsplit("/", 1)[1] for r in _pod_deletes(sim)]
        after = [p["metadata"]["name"] for p in sim.get("/api/v1/namespaces/shop/pods")["items"]
                 if p["metadata"]["labels"].get("app") == "cart"]
    assert summary["outcome"] == "succeeded", summary
    # Only the pod chosen before the crash, never its replacement (which crash-loops on the same image).
    assert set(deletes) == {crashing} and crashing not in after
    # Applied: the retry found its victim gone and deleted nothing. Not applied: the retry deleted that same pod
    # (once more on the wire, unless the simulator finished the dropped request first).
    assert len(deletes) == 1 if moment == "applied" else 1 <= len(deletes) <= 2
    assert len(after) == 4, "the ReplicaSet replaced the deleted pod once"
    assert DEFAULT_HEARTBEAT_S <= went_on < GOES_ON_WITHIN_S


DRAIN_RUNBOOK = """
name: crash-drain
version: 1
changes: {clusters: ["*"], cluster_resources: [nodes], names: [node-3]}
steps:
  - id: drain
    action: k8s.drain
    params: {node: node-3}
  - id: after
    action: util.echo
    params: {message: went on}
"""


def _evictions(sim: Any) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["method"] == "POST" and r["path"].endswith("/eviction")]


@pytest.mark.parametrize("moment", CRASH_MOMENTS)
async def test_a_drain_interrupted_by_a_crash_evicts_each_pod_once_and_leaves_the_node_cordoned(
        dev_server: DevServer, client: Client, k8s_sim: Any, tmp_path: Path, unique: str, moment: str) -> None:
    with k8s_sim("node-not-ready") as sim:
        pods = sim.get("/api/v1/namespaces/shop/pods")["items"]
        on_node = sorted(p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == "node-3")
        summary, went_on = await _kill_mid_change(dev_server, client, sim, DRAIN_RUNBOOK, moment, tmp_path, unique,
                                                  "POST", "/eviction", lambda: _evictions(sim))
        evicted = [r["path"].split("/")[-2] for r in _evictions(sim)]
        node = sim.get("/api/v1/nodes/node-3")
        left = [p["metadata"]["name"] for p in sim.get("/api/v1/namespaces/shop/pods")["items"]
                if p["spec"].get("nodeName") == "node-3"]
    assert summary["outcome"] == "succeeded", summary
    assert on_node and node["spec"]["unschedulable"] is True and left == []
    # Each pod evicted once: the retry finds it gone (applied) or evicts it now (not applied); replacements landed
    # elsewhere (node-3 is cordoned), so the retry has nothing else to evict.
    assert set(evicted) == set(on_node)
    assert len(evicted) == len(on_node) if moment == "applied" else len(on_node) <= len(evicted) <= len(on_node) + 1
    assert DEFAULT_HEARTBEAT_S <= went_on < GOES_ON_WITHIN_S
