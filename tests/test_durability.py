"""Crash and change: an incident resumes at its exact step after its worker is killed, and keeps its plan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from aiohttp import web
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.devserver import DevServer
from incidentctl.library import compile_file
from incidentctl.localhttp import serve
from tests.conftest import TEST_TASK_QUEUE, eventually, write
from workflows.model import ApprovalDecision

ROOT = Path(__file__).resolve().parents[1]

COUNTING_RUNBOOK = """
name: durable-restart
version: 1
parameters:
  base: {type: string, required: true}
steps:
  - id: contain
    action: http.request
    params: {url: "${{ params.base }}/contain", method: POST}
  - id: gate
    approval: {message: "continue?", approvers: [alice]}
  - id: resolve
    action: http.request
    params: {url: "${{ params.base }}/resolve", method: POST}
"""


async def _counting_server() -> tuple[web.AppRunner, str, dict[str, int]]:
    hits: dict[str, int] = {}

    async def count(request: web.Request) -> web.Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/{name}", count)
    runner, url = await serve(app)
    return runner, url, hits


def _worker_process(server: DevServer, task_queue: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "--address", server.address, "--task-queue", task_queue],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )


async def test_incident_resumes_at_exact_step_after_worker_is_killed(
    dev_server: DevServer, client: Client, tmp_path: Path, unique: str
) -> None:
    runner, base, hits = await _counting_server()
    task_queue = f"crash-{unique}"
    plan = compile_file(write(tmp_path / "durable.yaml", COUNTING_RUNBOOK))
    first = _worker_process(dev_server, task_queue, tmp_path / "worker1.log")
    second = None
    try:
        started = await incidents.start_incident(client, plan, key=unique, params={"base": base},
                                                 task_queue=task_queue)
        await eventually(lambda: incidents.show_incident(client, started.incident_id),
                         lambda s: s["status"] == "waiting_approval", timeout=60)
        os.killpg(first.pid, signal.SIGKILL)  # no graceful shutdown: a crash
        first.wait(timeout=10)

        second = _worker_process(dev_server, task_queue, tmp_path / "worker2.log")
        await incidents.decide(client, started.incident_id, ApprovalDecision(approver="alice", approve=True))
        summary = await incidents.wait_for_runbook(client, started.incident_id)
    finally:
        for process in (first, second):
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
        await runner.cleanup()
    assert summary["outcome"] == "succeeded"
    assert hits == {"/contain": 1, "/resolve": 1}, "completed steps never re-run after a crash"


PINNED_V1 = """
name: pinned
version: 1
steps:
  - id: gate
    approval: {message: "go?", approvers: [anyone]}
  - id: act
    action: util.echo
    params: {message: from version 1}
"""


async def test_running_incident_keeps_its_plan_when_the_yaml_changes(
    client: Client, worker: Worker, tmp_path: Path, unique: str
) -> None:
    path = write(tmp_path / "pinned.yaml", PINNED_V1)
    plan_v1 = compile_file(path)
    started = await incidents.start_incident(client, plan_v1, key=unique, task_queue=TEST_TASK_QUEUE)
    await eventually(lambda: incidents.show_incident(client, started.incident_id),
                     lambda s: s["status"] == "waiting_approval")

    write(path, PINNED_V1.replace("version: 1", "version: 2").replace("from version 1", "from version 2"))
    plan_v2 = compile_file(path)
    assert plan_v2.hash != plan_v1.hash

    await incidents.decide(client, started.incident_id, ApprovalDecision(approver="anyone", approve=True))
    summary = await incidents.wait_for_runbook(client, started.incident_id)
    assert summary["steps"]["act"]["output"]["message"] == "from version 1"
    assert (summary["plan_hash"], summary["runbook_version"]) == (plan_v1.hash, "1")
