"""Our own metrics on the worker's Prometheus endpoint: incidents run on a `python worker.py` process with a
metrics address, then the endpoint is scraped the way Prometheus does, next to the Temporal SDK's own series."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.devserver import DevServer, free_port
from incidentctl.library import compile_file
from incidentctl.worker_metrics import error_type
from tests.conftest import eventually, write
from tests.worker_process import WorkerProcess
from workflows.model import ApprovalDecision, Closure, Resolution

METERED_RUNBOOK = """
name: metered
version: 1
severity: SEV4
steps:
  - id: look
    action: util.echo
    params: {message: looking}
  - id: ask
    approval: {message: "go on?", approvers: [alice], timeout: 10m}
  - id: broken
    action: util.fail
    params: {error_type: DiskFull, non_retryable: true}
    on_failure: continue
  - id: never
    when: "false"
    action: util.echo
    params: {message: skipped}
resolve: {requires: person}
"""

SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = dict(LABEL.findall(match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


def value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels` (the SDK adds its own, e.g. the task
    queue and the workflow type)."""
    return sum(v for n, series, v in samples if n == name and labels.items() <= series.items())


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
        assert r.status == 200
        return await r.text()


@pytest.fixture
def metered_worker(tmp_path: Path, dev_server: DevServer, unique: str) -> Iterator[str]:
    """A worker process on task queue `unique` serving metrics; the scrape URL."""
    address = f"127.0.0.1:{free_port()}"
    worker = WorkerProcess(tmp_path / "worker.log", "--address", dev_server.address, "--task-queue", unique,
                           env={"INCIDENTCTL_WORKER_METRICS_ADDRESS": address,
                                "INCIDENTCTL_WORKER_HEALTH_ADDRESS": "127.0.0.1:0"})
    try:
        yield f"http://{address}/metrics"
    finally:
        worker.stop()


async def test_incidents_steps_actions_and_approvals_are_counted_on_the_sdk_endpoint(
        client: Client, tmp_path: Path, unique: str, metered_worker: str) -> None:
    plan = compile_file(write(tmp_path / "metered.yaml", METERED_RUNBOOK))
    started = await incidents.start_incident(client, plan, key=unique, task_queue=unique, started_by="bob",
                                             eager_start=False)
    incident = started.incident_id
    await eventually(lambda: incidents.show_incident(client, incident),
                     lambda state: bool(state["pending_approvals"]), timeout=90)
    waiting = parse(await scrape(metered_worker))
    assert value(waiting, "incidentctl_approvals_requested_total", runbook="metered") == 1
    assert value(waiting, "incidentctl_approvals_finished_total", runbook="metered") == 0, "one is waiting"

    await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True, step="ask"))
    summary = await incidents.wait_for_runbook(client, incident)
    assert summary["steps"]["broken"]["status"] == "failed"
    await incidents.resolve_incident(client, incident, Resolution(by="alice", summary="done"))
    await incidents.close_incident(client, incident, Closure(by="alice"))
    await client.get_workflow_handle(incident).result()

    text = await eventually(lambda: scrape(metered_worker),
                            lambda body: "incidentctl_incidents_closed_total" in body, timeout=30)
    samples = parse(text)
    assert value(samples, "incidentctl_incidents_opened_total", runbook="metered", severity="SEV4") == 1
    assert value(samples, "incidentctl_incidents_closed_total", runbook="metered", severity="SEV4",
                 status="closed") == 1
    assert value(samples, "incidentctl_steps_started_total", kind="action", action="util.echo") == 1
    assert value(samples, "incidentctl_steps_started_total", kind="approval") == 1
    assert value(samples, "incidentctl_steps_finished_total", action="util.echo", outcome="succeeded") == 1
    assert value(samples, "incidentctl_steps_finished_total", action="util.echo", outcome="skipped") == 1
    assert value(samples, "incidentctl_steps_finished_total", action="util.fail", outcome="failed") == 1
    assert value(samples, "incidentctl_step_failures_total", action="util.fail", error_type="DiskFull") == 1
    assert value(samples, "incidentctl_approvals_finished_total", runbook="metered", outcome="approved") == 1
    assert value(samples, "incidentctl_action_attempts_total", action="util.echo", outcome="succeeded") == 1
    assert value(samples, "incidentctl_action_attempts_total", action="util.fail", outcome="failed") == 1
    assert value(samples, "incidentctl_action_failures_total", action="util.fail", error_type="DiskFull") == 1
    assert value(samples, "incidentctl_action_duration_seconds_count", action="util.echo") == 1
    # Seconds, with our buckets (the SDK's default buckets are milliseconds).
    assert value(samples, "incidentctl_action_duration_seconds_bucket", action="util.echo", le="0.05") >= 0
    assert any(labels.get("le") == "1800" for name, labels, _ in samples
               if name == "incidentctl_action_duration_seconds_bucket")
    ours = [line for line in text.splitlines() if line.startswith("incidentctl_")]
    assert ours and not [line for line in ours if incident in line], "no incident ids in labels"
    # One scrape target: the Temporal SDK's own series are served alongside.
    assert value(samples, "temporal_workflow_completed", task_queue=unique) >= 1


async def test_a_cancelled_incident_finishes_its_waiting_approval_and_counts_its_end(
        client: Client, tmp_path: Path, unique: str, metered_worker: str) -> None:
    plan = compile_file(write(tmp_path / "metered.yaml", METERED_RUNBOOK))
    started = await incidents.start_incident(client, plan, key=unique, task_queue=unique, eager_start=False)
    await eventually(lambda: incidents.show_incident(client, started.incident_id),
                     lambda state: bool(state["pending_approvals"]), timeout=90)
    await incidents.cancel_incident(client, started.incident_id)
    samples = parse(await eventually(lambda: scrape(metered_worker),
                                     lambda body: "incidentctl_incidents_closed_total" in body, timeout=60))
    assert value(samples, "incidentctl_approvals_finished_total", outcome="cancelled") == 1
    assert value(samples, "incidentctl_approvals_requested_total") - value(
        samples, "incidentctl_approvals_finished_total") == 0, "nothing waits any more"
    assert value(samples, "incidentctl_incidents_closed_total", runbook="metered", status="cancelled") == 1
    assert value(samples, "incidentctl_steps_finished_total", kind="approval", outcome="cancelled") == 1
    assert value(samples, "incidentctl_steps_started_total") == value(samples, "incidentctl_steps_finished_total"), \
        "every started step has finished"


def test_error_type_is_the_application_error_type_else_the_class() -> None:
    from temporalio.exceptions import ApplicationError

    assert error_type(ApplicationError("no", type="DiskFull")) == "DiskFull"
    assert error_type(ApplicationError("no")) == "ApplicationError"
    assert error_type(TimeoutError()) == "TimeoutError"
