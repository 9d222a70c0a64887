"""Stakeholder communication through real HTTP: webhook, Slack and a local GitHub REST fake.

Covers the message lifecycle (opened, cadence updates, approval request, resolved), the GitHub issue per
incident, and no duplicate message when a worker is killed mid-send.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.base import ActionInput
from activities.notify.github import github_issue
from incidentctl import client as incidents
from incidentctl.devserver import DevServer
from incidentctl.library import compile_text
from incidentctl.localhttp import serve
from tests.conftest import TEST_TASK_QUEUE, eventually
from workflows.model import ApprovalDecision, Reopening

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Sink:
    """Records webhook deliveries; deduplicates by Idempotency-Key as a careful receiver does."""

    url: str = ""
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    slack: list[dict[str, Any]] = field(default_factory=list)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    stall_event: str | None = None  # hold the first delivery of this event (to kill a worker meanwhile)
    stalled: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> list[str]:
        return [m["event"] for m in self.messages.values()]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    state = Sink()

    async def webhook(request: web.Request) -> web.Response:
        body = await request.json()
        state.deliveries.append(body)
        if body["event"] == state.stall_event and not state.stalled.is_set():
            state.stalled.set()
            await asyncio.sleep(30)  # the worker is killed while this send is in flight
        state.messages.setdefault(request.headers["Idempotency-Key"], body)
        return web.json_response({"ok": True})

    async def slack(request: web.Request) -> web.Response:
        state.slack.append(await request.json())
        return web.Response(text="ok")

    async def list_issues(request: web.Request) -> web.Response:
        wanted = request.query.get("labels")
        return web.json_response([i for i in state.issues.values() if not wanted or wanted in i["labels"]])

    async def create_issue(request: web.Request) -> web.Response:
        body = await request.json()
        number = len(state.issues) + 1
        state.issues[number] = {"number": number, "state": "open", "title": body["title"], "body": body["body"],
                                "labels": list(body.get("labels", [])), "comments": []}
        return web.json_response(state.issues[number], status=201)

    async def comments(request: web.Request) -> web.Response:
        issue = state.issues[int(request.match_info["n"])]
        if request.method == "POST":
            issue["comments"].append({"body": (await request.json())["body"]})
            return web.json_response(issue["comments"][-1], status=201)
        return web.json_response(issue["comments"])

    async def labels(request: web.Request) -> web.Response:
        issue = state.issues[int(request.match_info["n"])]
        issue["labels"] += (await request.json())["labels"]
        return web.json_response([{"name": n} for n in issue["labels"]])

    async def patch_issue(request: web.Request) -> web.Response:
        issue = state.issues[int(request.match_info["n"])]
        issue.update(await request.json())
        return web.json_response(issue)

    app = web.Application()
    app.router.add_post("/hooks/webhook", webhook)
    app.router.add_post("/hooks/slack", slack)
    app.router.add_get("/repos/acme/shop/issues", list_issues)
    app.router.add_post("/repos/acme/shop/issues", create_issue)
    app.router.add_route("*", "/repos/acme/shop/issues/{n}/comments", comments)
    app.router.add_post("/repos/acme/shop/issues/{n}/labels", labels)
    app.router.add_patch("/repos/acme/shop/issues/{n}", patch_issue)
    runner, state.url = await serve(app)
    yield state
    await runner.cleanup()


def runbook(url: str, cadence: str = "1s", send_timeout: str = "30s") -> str:
    return f"""
name: comms
version: 1
severity: SEV2
parameters:
  deployment: {{type: string, default: cart}}
  repo: {{type: string, default: acme/shop}}
communication:
  channels:
    - {{type: webhook, url: "{url}/hooks/webhook"}}
    - {{type: slack, url: "{url}/hooks/slack"}}
    - {{type: github, repo: "${{{{ params.repo }}}}", api_url: "{url}", token_env: INCIDENTCTL_TEST_NO_TOKEN}}
  status_updates: {{SEV2: {cadence}}}
  impact: "checkout errors for ${{{{ params.deployment }}}}"
  root_cause: "bad deploy of ${{{{ params.deployment }}}}"
  approve_url: "https://incidentctl.example"
  send_timeout: {send_timeout}
steps:
  - id: diagnose
    action: util.echo
    params: {{message: "5 pods crash-looping", data: {{revision: 7}}}}
  - id: settle
    sleep: 2500ms
  - id: gate
    approval: {{message: "roll back ${{{{ params.deployment }}}}?", approvers: [alice]}}
  - id: rollback
    action: util.echo
    params: {{message: "undo to ${{{{ steps.diagnose.output.data.revision }}}}"}}
"""


async def test_message_lifecycle_on_every_channel(client: Client, worker: Worker, sink: Sink, unique: str) -> None:
    plan = compile_text(runbook(sink.url), "comms.yaml")
    started = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE)
    try:
        await _check_message_lifecycle(client, sink, started.incident_id)
        await _check_updates_rest_while_resolved(client, sink, started.incident_id)
    finally:
        # Reopened, it would send updates at the 1 s cadence for the rest of the session.
        await client.get_workflow_handle(started.incident_id).terminate("test over")


async def _check_message_lifecycle(client: Client, sink: Sink, incident: str) -> None:
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["pending_approvals"])
    await eventually(lambda: asyncio.sleep(0, sink.events()), lambda e: "approval_requested" in e)
    # Updates go on at the cadence while the incident waits. A loaded machine may have sent only one before
    # the request, and an approval given at once would end them (seen in CI): wait for the second.
    await eventually(lambda: asyncio.sleep(0, sink.events()), lambda e: e.count("update") >= 2)
    await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True))
    summary = await incidents.wait_for_runbook(client, incident)
    assert summary["outcome"] == "succeeded"

    # Without alerts the runbook's success resolves the incident, and that is the message people get.
    events = await eventually(lambda: asyncio.sleep(0, sink.events()), lambda e: e and e[-1] == "resolved")
    # Each message goes to the three channels at once: the webhook's "resolved" can come before Slack's, and
    # before GitHub's closes the issue (seen on a loaded machine).
    await eventually(lambda: asyncio.sleep(0, sink), lambda s: len(s.slack) == len(s.messages)
                     and any(i["state"] == "closed" for i in s.issues.values()))
    assert events[0] == "opened"
    assert events.count("update") >= 2, events
    assert events.index("approval_requested") > events.index("update")
    by_event = {m["event"]: m["message"] for m in sink.messages.values()}
    assert by_event["opened"].startswith(f"[INCIDENT OPENED] {incident} (SEV2, runbook comms)")
    update = next(m["message"] for m in sink.messages.values() if m["event"] == "update")
    assert "[INCIDENT UPDATE]" in update and "Impact: checkout errors for cart" in update
    assert "Current actions:" in update and "Next update: in 1s" in update
    request = by_event["approval_requested"]
    assert "Step gate: roll back cart?" in request and "5 pods crash-looping" in request
    assert "If approved, next: rollback runs util.echo with" in request and "undo to 7" in request
    assert f"Approve: incidentctl incident approve {incident} --step gate --as USER" in request
    assert f"POST https://incidentctl.example/incidents/{incident}/approvals" in request
    # The step waiting goes with the request (Slack makes buttons of it: tests/test_slack.py).
    assert next(d for d in sink.deliveries if d["event"] == "approval_requested")["approval_step"] == "gate"
    assert all("approval_step" not in d for d in sink.deliveries if d["event"] != "approval_requested")
    resolved = by_event["resolved"]
    assert resolved.startswith("[INCIDENT RESOLVED]") and "Root cause: bad deploy of cart" in resolved
    assert "Duration: " in resolved
    assert len(sink.deliveries) == len(sink.messages), "each message was sent once"

    assert [m["text"].split("]")[0] + "]" for m in sink.slack][:1] == ["[INCIDENT OPENED]"]
    assert len(sink.slack) == len(sink.messages)
    (issue,) = sink.issues.values()  # the templated repo was rendered: the issue is in acme/shop
    assert issue["state"] == "closed" and "incident:resolved" in issue["labels"]
    assert issue["body"].startswith("[INCIDENT OPENED]")
    assert len(issue["comments"]) == len(sink.messages) - 1, "every later message is one comment"


async def _check_updates_rest_while_resolved(client: Client, sink: Sink, incident: str) -> None:
    """People heard "resolved": no more updates while it stays resolved (three cadences), and they come back
    when the incident reopens."""
    await asyncio.sleep(3.5)
    events = sink.events()
    assert events[-1] == "resolved" and "update" not in events[events.index("resolved"):], events
    await incidents.reopen_incident(client, incident, Reopening(by="alice", reason="errors are back"))
    await eventually(lambda: asyncio.sleep(0, sink.events()), lambda e: "update" in e[e.index("resolved"):])


async def test_github_send_is_idempotent_by_key(sink: Sink) -> None:
    env = ActivityEnvironment()
    params = {"repo": "acme/shop", "api_url": sink.url, "token_env": "INCIDENTCTL_TEST_NO_TOKEN", "message": "hello"}
    opened = ActionInput(action="notify.github", params={**params, "event": "opened", "key": "k/opened/1"},
                         incident_id="inc-9", step_id="comms")
    update = ActionInput(action="notify.github", params={**params, "event": "update", "key": "k/update/2"},
                         incident_id="inc-9", step_id="comms")
    first = await env.run(github_issue, opened)
    again = await env.run(github_issue, opened)
    assert first["created"] is True and again["created"] is False and first["issue"] == again["issue"]
    await env.run(github_issue, update)
    await env.run(github_issue, update)  # a retry of the same message
    assert len(sink.issues) == 1 and len(sink.issues[first["issue"]]["comments"]) == 1


async def test_no_duplicate_message_after_worker_killed_mid_send(dev_server: DevServer, client: Client,
                                                                 sink: Sink, tmp_path: Path, unique: str) -> None:
    sink.stall_event = "opened"
    task_queue = f"comms-{unique}"

    def worker_process(log: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "worker.py", "--address", dev_server.address, "--task-queue",
                                 task_queue], cwd=ROOT, stdout=(tmp_path / log).open("wb"),
                                stderr=subprocess.STDOUT, start_new_session=True)

    plan = compile_text(runbook(sink.url, cadence="off", send_timeout="2s"), "comms.yaml")
    first = worker_process("w1.log")
    second = None
    try:
        started = await incidents.start_incident(client, plan, key=unique, task_queue=task_queue)
        await asyncio.wait_for(sink.stalled.wait(), timeout=30)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        second = worker_process("w2.log")
        await eventually(lambda: incidents.show_incident(client, started.incident_id),
                         lambda s: s["pending_approvals"], timeout=60)
        await incidents.decide(client, started.incident_id, ApprovalDecision(approver="alice", approve=True))
        await incidents.wait_for_runbook(client, started.incident_id)
        # The runbook's success resolves the incident (no alerts): that message comes from the new worker too.
        await eventually(lambda: asyncio.sleep(0, sink.events()), lambda e: e and e[-1] == "resolved", timeout=30)
    finally:
        for process in (first, second):
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
    opened = [d for d in sink.deliveries if d["event"] == "opened"]
    assert len(opened) >= 2, "the send was retried after the crash"
    assert len({d["idempotency_key"] for d in opened}) == 1, "with the same key"
    assert sink.events().count("opened") == 1, "so the receiver kept one message"
    assert sink.events()[-1] == "resolved"
