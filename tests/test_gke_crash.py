"""A worker SIGKILLed while a node pool resize is in flight: GKE is asked once, the next worker waits for that
operation, and the incident goes on. Through the real wire: a Temporal dev server, the fake GKE API and the
workers as separate processes (stopped by PID)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.gke.api import ENDPOINT_ENV
from incidentctl import client as incidents
from incidentctl.devserver import DevServer
from incidentctl.library import compile_text
from tests.conftest import eventually
from tests.gke_fake import FakeGke, start_gke

ROOT = Path(__file__).resolve().parents[1]
# Long enough that the kill lands while the worker waits for the operation, and the retry still finds it running.
OPERATION_S = 45.0

# Pool `batch` (two zones): the shipped runbook's tests change `web` on the same session's Temporal server, and a
# change by another incident within 30 minutes would hold this one for a fresh approval (leases.recent_changes).
RESIZE_RUNBOOK = """
name: crash-resize
version: 1
changes: {gke: {clusters: ["acme-prod/europe-west1/shop"], node_pools: [batch]}}
steps:
  - id: resize
    action: gke.resize_node_pool
    params: {project: acme-prod, location: europe-west1, cluster: shop, node_pool: batch, node_count: 3,
             max_nodes: 6, poll: 1s, timeout: 5m}
    timeout: 6m
  - id: after
    action: util.echo
    params: {message: went on}
"""


def _worker(server: DevServer, task_queue: str, endpoint: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "--address", server.address, "--task-queue", task_queue],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, ENDPOINT_ENV: endpoint},
    )


async def _heartbeat_details(client: Client, workflow_id: str) -> bytes:
    """The raw heartbeat details of the incident's pending activities, as the server holds them."""
    described = await client.get_workflow_handle(workflow_id).describe()
    return b"".join(payload.data for pending in described.raw_description.pending_activities
                    for payload in pending.heartbeat_details.payloads)


@pytest.fixture
def gke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGke]:
    with start_gke(tmp_path, monkeypatch, operation_s=OPERATION_S) as fake:
        yield fake


async def test_a_resize_interrupted_by_a_crash_asks_gke_once_and_waits_for_its_operation(
        dev_server: DevServer, client: Client, tmp_path: Path, unique: str, gke: FakeGke) -> None:
    task_queue = f"gke-kill-{unique}"
    first = _worker(dev_server, task_queue, gke.url, tmp_path / "worker1.log")
    second = None
    try:
        started = await incidents.start_incident(client, compile_text(RESIZE_RUNBOOK, "crash.yaml"), key=unique,
                                                 task_queue=task_queue)
        # The resize was asked for, and Temporal holds the heartbeat naming its operation as this step's.
        await eventually(lambda: _heartbeat_details(client, started.incident_id),
                         lambda details: b"operation-1" in details and b"mine" in details, timeout=90)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        second = _worker(dev_server, task_queue, gke.url, tmp_path / "worker2.log")
        summary = await incidents.wait_for_runbook(client, started.incident_id, timeout=300)
    finally:
        for process in (first, second):
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
    assert summary["outcome"] == "succeeded", summary
    output = summary["steps"]["resize"]["output"]
    assert output["resumed"] is True and output["operation"]["name"] == "operation-1"
    assert output["operation"]["status"] == "DONE"
    assert gke.calls(":setSize") == 1, "the retry waited for the first attempt's operation, it did not ask again"
    assert gke.pool("batch")["node_count"] == 3
    assert summary["steps"]["after"]["output"]["message"] == "went on"
