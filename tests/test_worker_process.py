"""The worker as a production process: it waits for a Temporal that starts after it, answers its probes, and on
SIGTERM lets a running step finish before it exits."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.connection import Backoff
from incidentctl.devserver import DevServer, free_port
from incidentctl.library import compile_file
from tests.conftest import eventually, write
from tests.worker_process import WorkerProcess, http_status

ROOT = Path(__file__).resolve().parents[1]

SLEEPY_RUNBOOK = """
name: sleepy
version: 1
steps:
  - id: nap
    action: util.sleep
    params: {seconds: 6}
  - id: after
    action: util.echo
    params: {message: woke up}
"""


ACTIVITY_OUTCOMES = {f"activity_task_{kind}_event_attributes": kind
                     for kind in ("completed", "failed", "timed_out", "canceled")}


@pytest.fixture
def worker_processes() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.stop()


async def test_worker_started_before_temporal_waits_then_serves_incidents(
    tmp_path: Path, unique: str, worker_processes: list[WorkerProcess]
) -> None:
    port = free_port()
    worker = WorkerProcess(tmp_path / "worker.log", "--address", f"127.0.0.1:{port}", "--task-queue", unique,
                           env={"INCIDENTCTL_WORKER_HEALTH_ADDRESS": "127.0.0.1:0"})
    worker_processes.append(worker)
    # The receiver, as compose and the manifests run it, waits the same way.
    receiver_port = free_port()
    receiver_log = tmp_path / "receiver.log"
    receiver = subprocess.Popen([str(Path(sys.executable).parent / "incidentctl"), "receiver", "--port",
                                 str(receiver_port), "--address", f"127.0.0.1:{port}", "--task-queue", unique],
                                cwd=ROOT,
                                env={**os.environ, "INCIDENTCTL_RECEIVER_TOKEN": "t"}, stdout=receiver_log.open("wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)
    health = await worker.health_url()
    await eventually(lambda: asyncio.sleep(0, worker.output()), lambda out: "retrying in" in out, timeout=30)
    assert await http_status(f"{health}/healthz") == 200, "waiting for Temporal is a healthy state"
    assert await http_status(f"{health}/readyz") == 503, "not ready before it polls"
    assert worker.process.poll() is None
    await eventually(lambda: asyncio.sleep(0, receiver_log.read_text()), lambda out: "retrying in" in out)
    assert receiver.poll() is None, receiver_log.read_text()

    server = DevServer(headless=True, port=port, db_file=str(tmp_path / "temporal.db"),
                       log_file=tmp_path / "server.log")
    server.start()
    try:
        await eventually(lambda: http_status(f"{health}/readyz"), lambda status: status == 200, timeout=90)
        assert f"Temporal at 127.0.0.1:{port} reachable after" in worker.output()
        client = await Client.connect(server.address)
        plan = compile_file(write(tmp_path / "sleepy.yaml", SLEEPY_RUNBOOK.replace("seconds: 6", "seconds: 0")))
        started = await incidents.start_incident(client, plan, key=unique, task_queue=unique)
        summary = await incidents.wait_for_runbook(client, started.incident_id)
        assert summary["outcome"] == "succeeded"
        await eventually(lambda: http_status(f"http://127.0.0.1:{receiver_port}/healthz"), lambda status: status == 200,
                         timeout=90)
    finally:
        worker.stop()
        if receiver.poll() is None:
            os.killpg(receiver.pid, signal.SIGKILL)
            receiver.wait(timeout=10)
        server.stop()


async def _nap_outcome(client: Client, incident_id: str) -> tuple[str, int]:
    """How the util.sleep activity ended in history, and the attempt that ended it."""
    history = await client.get_workflow_handle(incident_id).fetch_history()
    scheduled = next(event.event_id for event in history.events
                     if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                     and event.activity_task_scheduled_event_attributes.activity_type.name == "util.sleep")
    attempt = next(event.activity_task_started_event_attributes.attempt for event in history.events
                   if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                   and event.activity_task_started_event_attributes.scheduled_event_id == scheduled)
    for event in history.events:
        which = event.WhichOneof("attributes")
        if which in ACTIVITY_OUTCOMES and getattr(event, which).scheduled_event_id == scheduled:
            return ACTIVITY_OUTCOMES[which], attempt
    return "open", attempt


async def _nap_started(client: Client, incident_id: str) -> bool:
    description = await client.get_workflow_handle(incident_id).describe()
    pending = description.raw_description.pending_activities
    # Started, not only scheduled: a SIGTERM before the worker took it would test nothing.
    return any(activity.activity_type.name == "util.sleep"
               and activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for activity in pending)


async def test_sigterm_during_a_step_lets_it_finish_within_the_grace(
    dev_server: DevServer, client: Client, tmp_path: Path, unique: str, worker_processes: list[WorkerProcess]
) -> None:
    worker = WorkerProcess(tmp_path / "worker.log", "--address", dev_server.address, "--task-queue", unique,
                           "--health-address", "127.0.0.1:0", env={"INCIDENTCTL_WORKER_SHUTDOWN_GRACE": "60s"})
    worker_processes.append(worker)
    health = await worker.health_url()
    await eventually(lambda: http_status(f"{health}/readyz"), lambda status: status == 200, timeout=60)
    plan = compile_file(write(tmp_path / "sleepy.yaml", SLEEPY_RUNBOOK))
    started = await incidents.start_incident(client, plan, key=unique, task_queue=unique)
    await eventually(lambda: _nap_started(client, started.incident_id), bool, timeout=60)

    os.killpg(worker.process.pid, signal.SIGTERM)
    await eventually(lambda: asyncio.sleep(0, worker.output()), lambda out: "running steps have 60.0s" in out)
    assert worker.process.poll() is None, "the worker waits for the running step"
    assert await http_status(f"{health}/readyz") == 503, "no longer ready: it takes no new work"
    assert await http_status(f"{health}/healthz") == 200, "alive: a liveness probe must not kill it mid-step"
    exit_code = await asyncio.to_thread(worker.process.wait, 60)
    assert exit_code == 0, worker.output()
    assert "worker stopped" in worker.output()
    # The nap completed on the stopping worker (before any other worker exists): no failure, no second attempt.
    assert await _nap_outcome(client, started.incident_id) == ("completed", 1)

    # Another worker takes the incident on from the next step.
    successor = WorkerProcess(tmp_path / "worker2.log", "--address", dev_server.address, "--task-queue", unique)
    worker_processes.append(successor)
    summary = await incidents.wait_for_runbook(client, started.incident_id)
    assert summary["outcome"] == "succeeded"
    assert summary["steps"]["after"]["output"]["message"] == "woke up"


def test_connection_backoff_doubles_up_to_its_ceiling() -> None:
    assert Backoff().delays() == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert Backoff(first_s=5, max_s=3).delays() == [3]


async def test_worker_gives_up_after_its_connect_timeout(tmp_path: Path) -> None:
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, str(ROOT / "worker.py"), "--address", f"127.0.0.1:{free_port()}",
                         "--connect-timeout", "2s"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert re.search(r"not reachable \(attempt 1\): .*; retrying in 1s", result.stderr)
    assert "still unreachable after 2s" in result.stderr
    assert "Traceback" not in result.stderr


async def test_bad_settings_are_refused_with_a_sentence(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "worker.py"), "--health-address", "nowhere"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--health-address must be HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr
