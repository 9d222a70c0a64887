"""A worker killed in the middle of a Kubernetes wait: another worker takes over and keeps the same deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.devserver import DevServer
from incidentctl.library import compile_text
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[1]

WAIT_RUNBOOK = """
name: durable-wait
version: 1
steps:
  - id: stable
    action: k8s.wait_stable
    params: {namespace: shop, selector: app=checkout, for: 10s, timeout: 3m, interval: 0.5s}
    timeout: 4m
"""


def _worker(server: DevServer, task_queue: str, kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "--address", server.address, "--task-queue", task_queue],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "INCIDENTCTL_KUBECONFIG": str(kubeconfig)},
    )


async def test_a_wait_resumes_on_another_worker_with_its_original_deadline(
        dev_server: DevServer, client: Client, k8s_sim: Any, tmp_path: Path, unique: str) -> None:
    task_queue = f"k8s-crash-{unique}"
    with k8s_sim("healthy") as sim:
        first = _worker(dev_server, task_queue, sim.kubeconfig, tmp_path / "worker1.log")
        second = None
        try:
            started = await incidents.start_incident(client, compile_text(WAIT_RUNBOOK, "wait.yaml"), key=unique,
                                                     task_queue=task_queue)
            await eventually(lambda: incidents.incident_timeline(client, started.incident_id),
                             lambda events: any(e["kind"] == "step_started" for e in events), timeout=60)
            began = time.monotonic()
            await eventually(lambda: _polls(sim), lambda n: n >= 3, timeout=30)  # heartbeating, mid-wait
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            second = _worker(dev_server, task_queue, sim.kubeconfig, tmp_path / "worker2.log")
            summary = await incidents.wait_for_runbook(client, started.incident_id)
            total = time.monotonic() - began
        finally:
            for process in (first, second):
                if process and process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=10)
    output = summary["steps"]["stable"]["output"]
    assert summary["outcome"] == "succeeded" and output["ok"] is True
    # The second attempt started only after the 30s heartbeat timeout noticed the dead worker, and its clock
    # counts from the first attempt's start (carried in heartbeat details), not from its own.
    assert output["waited_s"] >= 30 + 10
    assert output["waited_s"] >= total - 5


async def _polls(sim: Any) -> int:
    return sum(1 for r in sim.requests() if r["method"] == "GET" and r["path"] == "/api/v1/namespaces/shop/pods")
