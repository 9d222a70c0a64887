"""The review and the report through the real wire: a real Temporal dev server, the real worker, a real webhook.

The review's timeline is checked against the incident's history event by event: the history is read here with
the plain Temporal client (protobuf events, payloads as JSON), not through incidentctl.history.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from incidentctl import client as incidents
from incidentctl.devserver import DevServer
from incidentctl.library import compile_text
from incidentctl.localhttp import serve
from incidentctl.report import collect_figures
from incidentctl.review import load_review, post_to_github
from incidentctl.review_markdown import review_markdown
from incidentctl.summaries import NONE, QUERY, RESULT
from tests.conftest import TEST_TASK_QUEUE, eventually
from tests.test_communication import Sink, sink  # noqa: F401 (the GitHub REST fake, a fixture)
from workflows.incident import IncidentWorkflow
from workflows.model import AlertNotification, ApprovalDecision, Closure, Resolution, ReviewEdit


def runbook(url: str) -> str:
    return f"""
name: review-e2e
version: 3
severity: SEV2
service: "${{{{ params.service }}}}"
parameters:
  service: {{type: string, default: cart}}
communication:
  channels:
    - {{type: webhook, url: "{url}/hook"}}
steps:
  - id: diagnose
    action: util.echo
    params: {{message: diagnosing, data: {{cause: "image 1.4.3 crashes on start"}}}}
    outputs: {{root_cause: "${{{{ result.data.cause }}}}"}}
  - id: gate
    approval: {{message: "roll back ${{{{ params.service }}}}?", approvers: [alice]}}
  - id: broken
    action: util.fail
    params: {{times: -1, error_type: Boom, message: always broken}}
    retry: {{max_attempts: 2, initial_interval: 100ms}}
    on_failure: continue
  - id: flaky
    action: util.fail
    params: {{times: 1, message: transient}}
    retry: {{max_attempts: 3, initial_interval: 100ms, backoff: 1}}
  - id: done
    action: util.echo
    params: {{message: done}}
"""


def iso(event: Any) -> str:
    return event.event_time.ToDatetime(tzinfo=UTC).isoformat()


def payload(payloads: Any) -> Any:
    return json.loads(payloads.payloads[0].data) if payloads.payloads else None


async def raw_history(client: Client, incident_id: str) -> list[Any]:
    return list((await client.get_workflow_handle(incident_id).fetch_history()).events)


def activity_facts(events: list[Any]) -> list[dict[str, Any]]:
    """Each activity of the history: its step, action, scheduling time, end time and outcome, its last attempt."""
    facts: dict[int, dict[str, Any]] = {}
    ends = {EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: ("activity_task_completed_event_attributes", "succeeded"),
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("activity_task_failed_event_attributes", "failed")}
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            given = payload(attrs.input)
            if not isinstance(given, dict) or "step_id" not in given:
                continue  # the engine's own activities (the plan check, lease requests): no step of the story
            facts[event.event_id] = {"step": given["step_id"], "action": attrs.activity_type.name,
                                     "scheduled": iso(event), "event_ids": [event.event_id]}
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            if attrs.scheduled_event_id not in facts:
                continue
            facts[attrs.scheduled_event_id].update(started=iso(event), attempt=attrs.attempt)
            facts[attrs.scheduled_event_id]["event_ids"].append(event.event_id)
        elif event.event_type in ends:
            name, outcome = ends[event.event_type]
            attrs = getattr(event, name)
            if attrs.scheduled_event_id not in facts:
                continue
            facts[attrs.scheduled_event_id].update(closed=iso(event), outcome=outcome)
            facts[attrs.scheduled_event_id]["event_ids"].append(event.event_id)
            if outcome == "failed":
                facts[attrs.scheduled_event_id]["error"] = attrs.failure.message
    return list(facts.values())


def approval_facts(events: list[Any]) -> list[dict[str, Any]]:
    accepted = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    facts = []
    for event in accepted:
        request = event.workflow_execution_update_accepted_event_attributes.accepted_request
        if request.input.name == "decide_approval":
            decision = payload(request.input.args)
            facts.append({"at": iso(event), "approver": decision["approver"], "comment": decision["comment"]})
    return facts



async def finish(client: Client, incident: str) -> dict[str, Any]:
    """What people do after the runbook: resolve it if it needs them, close it, and take the final summary."""
    state = await incidents.wait_for_runbook(client, incident)
    if state["status"] != "resolved":
        state = await eventually(lambda: incidents.show_incident(client, incident),
                                 lambda s: s["status"] in ("resolved", "needs_attention", "mitigated", "monitoring"))
        if state["status"] != "resolved":
            await incidents.resolve_incident(client, incident, Resolution(by="tester"))
    await incidents.close_incident(client, incident, Closure(by="tester", no_review=True))
    return await client.get_workflow_handle(incident).result()

async def test_review_timeline_matches_the_history_event_by_event(client: Client, worker: Worker,
                                                                  unique: str) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner, url = await serve(app)
    began = datetime.now(UTC)
    started_at = (began - timedelta(minutes=3)).isoformat().replace("+00:00", "Z")
    alert = {"fingerprint": f"fp-{unique}", "status": "firing", "startsAt": started_at,
             "labels": {"alertname": "KubePodCrashLooping", "service": "cart"}}
    try:
        plan = compile_text(runbook(url), "review-e2e.yaml")
        started = await incidents.start_incident(client, plan, key=unique, alert=alert, started_by="receiver",
                                                 task_queue=TEST_TASK_QUEUE)
        incident = started.incident_id
        await eventually(lambda: incidents.show_incident(client, incident),
                         lambda s: any(p["step"] == "gate" for p in s["pending_approvals"]))
        handle = client.get_workflow_handle(incident)
        other = {"fingerprint": f"fp2-{unique}", "labels": {"alertname": "KubeDeploymentReplicasMismatch"},
                 "startsAt": started_at}
        await handle.execute_update(IncidentWorkflow.alert_notification,
                                    AlertNotification(alerts=[{**other, "status": "firing"}]))
        await handle.execute_update(IncidentWorkflow.alert_notification,
                                    AlertNotification(alerts=[{**other, "status": "resolved"}]))
        # While open and waiting, the summary is the worker's answer to the state query.
        waiting, _ = await load_review(client, incident)
        assert (waiting["sources"]["summary"], waiting["sources"]["open"], waiting["missing"]) == (QUERY, True, [])
        assert [s["step"] for s in waiting["steps"]] == ["diagnose", "gate"]
        assert waiting["steps"][1]["status"] == "running"
        assert [(a["step"], a["outcome"], a["votes"]) for a in waiting["approvals"]] == [("gate", "waiting", [])]
        await incidents.decide(client, incident, ApprovalDecision(approver="alice", approve=True,
                                                                   comment="roll it back"))
        summary = await finish(client, incident)
    finally:
        await runner.cleanup()
    assert summary["status"] == "closed" and summary["outcome"] == "succeeded"

    review, _ = await load_review(client, incident)
    events = await raw_history(client, incident)
    assert review["sources"] == {"history_runs": 1, "history_events": review["sources"]["history_events"],
                                 "summary": RESULT, "open": False}

    # Every activity of a runbook step is that step in the review, with the history's times and outcome.
    activities = [a for a in activity_facts(events) if not a["step"].startswith("comms:")]
    assert [a["step"] for a in activities] == ["diagnose", "broken", "flaky", "done"]
    steps = {s["step"]: s for s in review["steps"]}
    for fact in activities:
        step = steps[fact["step"]]
        assert (step["action"], step["started_at"], step["finished_at"], step["outcome"], step["attempts"]) == (
            fact["action"], fact["scheduled"], fact["closed"], fact["outcome"], fact["attempt"]), fact["step"]
        [execution] = step["activities"]
        assert execution["event_ids"] == fact["event_ids"] and execution["started_at"] == fact["started"]
    assert (steps["broken"]["outcome"], steps["broken"]["attempts"]) == ("failed", 2)
    assert steps["broken"]["error"] == {"type": "Boom", "message": "always broken"}
    assert (steps["flaky"]["outcome"], steps["flaky"]["attempts"]) == ("succeeded", 2)
    timeline_steps = [e for e in review["timeline"] if e["kind"] == "step" and e.get("action")]
    assert [(e["step"], e["at"], e["finished_at"], e["outcome"]) for e in timeline_steps] == [
        (a["step"], a["scheduled"], a["closed"], a["outcome"]) for a in activities]

    # Each approval with its approver, comment and the time its update was accepted.
    [gate] = review["approvals"]
    assert [{k: v[k] for k in ("at", "approver", "comment")} for v in gate["votes"]] == approval_facts(events)
    assert (gate["step"], gate["outcome"], gate["votes"][0]["approve"]) == ("gate", "approved", True)
    assert gate["wait_s"] is not None and gate["wait_s"] > 0

    # The messages the webhook received, the alerts, the root cause, the times.
    messages = [a for a in activity_facts(events) if a["step"].startswith("comms:")]
    assert [(m["channel"], m["event"], m["at"]) for m in review["messages"]] == [
        ("notify.webhook", f["step"].split(":")[1], f["scheduled"]) for f in messages]
    assert {m["event"] for m in received} == {m["event"] for m in review["messages"]} == {
        "opened", "approval_requested", "resolved", "closed"}
    kinds = [e["kind"] for e in review["timeline"]]
    assert kinds[0] == "incident_opened" and kinds[-1] == "workflow_closed"
    assert [(e["kind"], e["alertname"]) for e in review["timeline"] if e["kind"].startswith("alert_")] == [
        ("alert_firing", "KubePodCrashLooping"), ("alert_firing", "KubeDeploymentReplicasMismatch"),
        ("alert_resolved", "KubeDeploymentReplicasMismatch")]
    assert review["times"]["detected_at"] == datetime.fromisoformat(started_at.replace("Z", "+00:00")).isoformat()
    assert 170 < review["durations"]["time_to_detect_s"] < 600
    assert review["root_cause"]["step_outputs"] == [{"step": "diagnose", "output": "root_cause",
                                                     "text": "image 1.4.3 crashes on start"}]
    assert review["durations"]["time_to_resolve_s"] > 0
    text = review_markdown(review)
    assert "alice approved `gate` (“roll it back”) → approved" in text
    assert "step `broken` (util.fail) → **failed**" in text and "after 2 attempts: Boom: always broken" in text

    # The report over the last hour has this incident with the same figures.
    figures = {f.incident_id: f for f in await collect_figures(client, began - timedelta(minutes=1))}
    mine = figures[incident]
    assert (mine.severity, mine.runbook, mine.service, mine.summary_source) == ("SEV2", "review-e2e", "cart", RESULT)
    assert mine.time_to_resolve_s == review["durations"]["time_to_resolve_s"]
    # manual: the vote, then resolving and closing it by hand (finish)
    assert mine.approval_waits_s and mine.automated_steps == 4 and mine.manual_steps == 3


MANY_STEPS = "name: review-long\nversion: 1\nsteps:\n" + "".join(
    f"  - id: s{i}\n    action: util.echo\n    params: {{message: 'step {i}'}}\n" for i in range(12))


async def test_review_reads_every_run_of_an_incident_that_continued_as_new(client: Client, worker: Worker,
                                                                           unique: str) -> None:
    plan = compile_text(MANY_STEPS, "long.yaml")
    started = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE,
                                             history_event_limit=30)
    summary = await finish(client, started.incident_id)
    assert summary["runs"] > 2
    review, history = await load_review(client, started.incident_id)
    assert review["sources"]["history_runs"] == summary["runs"] == len(set(history.runs))
    assert [s["step"] for s in review["steps"]] == [f"s{i}" for i in range(12)]
    assert all(s["source"] == "history" and s["outcome"] == "succeeded" for s in review["steps"])
    assert sum(e["kind"] == "continued_as_new" for e in review["timeline"]) == summary["runs"] - 1
    assert [e["kind"] for e in review["timeline"]].count("incident_opened") == 1


async def test_review_of_an_open_incident_without_a_worker_says_what_is_missing(client: Client,
                                                                                unique: str) -> None:
    plan = compile_text("name: review-nobody\nversion: 1\nsteps:\n  - id: a\n    action: util.echo\n"
                        "    params: {message: hi}\n", "nobody.yaml")
    started = await incidents.start_incident(client, plan, key=unique, task_queue=f"nobody-{unique}")
    try:
        review, _ = await load_review(client, started.incident_id)
    finally:
        await incidents.cancel_incident(client, started.incident_id)
    assert review["sources"]["summary"] == NONE and review["sources"]["open"] is True
    assert any(f"no worker is polling task queue 'nobody-{unique}'" in line for line in review["missing"])
    assert [e["kind"] for e in review["timeline"]] == ["incident_opened"]
    assert review["severity"]["current"] == "SEV3" and review["steps"] == []
    assert "Missing:" in review_markdown(review)


GITHUB_RUNBOOK = """
name: review-github
version: 1
communication:
  channels:
    - {{type: github, repo: acme/shop, api_url: "{url}", token_env: INCIDENTCTL_TEST_NO_TOKEN}}
steps:
  - id: diagnose
    action: util.echo
    params: {{message: diagnosing}}
"""


async def test_review_is_posted_once_to_the_incidents_github_issue(dev_server: DevServer, client: Client,
                                                                   worker: Worker, sink: Sink,  # noqa: F811
                                                                   unique: str) -> None:
    plan = compile_text(GITHUB_RUNBOOK.format(url=sink.url), "github.yaml")
    started = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE)
    await finish(client, started.incident_id)
    (issue,) = sink.issues.values()
    messages = len(issue["comments"])  # the incident's own messages (the first one opened the issue)

    async def review_posted() -> tuple[int, str, str]:
        # A process, as a user runs it; this test's event loop keeps serving the GitHub fake meanwhile.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "incidentctl.cli", "incident", "review", started.incident_id, "--post-github",
            "--address", dev_server.address, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        return process.returncode or 0, out.decode(), err.decode()

    code, out, err = await review_posted()
    assert code == 0, err
    assert out.startswith(f"# Post-incident review: {started.incident_id}")
    assert f"posted the review to GitHub issue #{issue['number']}" in err
    assert len(issue["comments"]) == messages + 1
    assert issue["comments"][-1]["body"].startswith(f"# Post-incident review: {started.incident_id}")
    code, _, err = await review_posted()
    assert code == 0, err
    assert len(issue["comments"]) == messages + 1, "the same review is not posted twice"


async def test_posting_needs_a_github_channel(client: Client, worker: Worker, unique: str) -> None:
    plan = compile_text(MANY_STEPS, "long.yaml")
    started = await incidents.start_incident(client, plan, key=unique, task_queue=TEST_TASK_QUEUE)
    await finish(client, started.incident_id)
    review, history = await load_review(client, started.incident_id)
    with pytest.raises(incidents.IncidentError, match="has no GitHub channel"):
        await post_to_github(history, review, review_markdown(review))


async def test_review_set_edits_the_incidents_review_with_the_lists_grown(dev_server: DevServer, client: Client,
                                                                          worker: Worker, unique: str) -> None:
    text = "name: review-edit\nversion: 1\nseverity: SEV2\nsteps:\n  - {id: only, action: util.echo}\n"
    started = await incidents.start_incident(client, compile_text(text, "e.yaml"), key=unique,
                                             task_queue=TEST_TASK_QUEUE)
    incident = started.incident_id
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    await incidents.update_review(client, incident, ReviewEdit(by="carol", fields={
        "what_went_well": ["the alert fired at once"]}))

    async def run_cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "incidentctl.cli", "incident", "review", incident, *args, "--address",
            dev_server.address, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
        return process.returncode or 0, out.decode(), err.decode()

    code, out, err = await run_cli("--set", "root_cause=image 1.4.3 crashes on start", "--set",
                                   "what_went_well=rollback took 40s", "--set", "action_items=pin digests @erin",
                                   "--as", "alice")
    assert code == 0, err
    assert out == f"review of {incident} updated by alice: action_items, root_cause, what_went_well\n"
    code, _, err = await run_cli("--set", f"root_cause={'x' * 20_001}", "--as", "bob")
    assert code == 1 and "error: review edit refused: root_cause must be text of at most 20000" in err
    code, out, err = await run_cli("--set", "what_went_well=only this", "--replace", "--set", "completed=true",
                                   "--as", "bob", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["answer"]["detail"]["review"]["what_went_well"] == ["only this"]
    review = (await incidents.show_incident(client, incident))["review"]
    assert (review["root_cause"], review["what_went_well"], review["action_items"], review["completed_by"]) == (
        "image 1.4.3 crashes on start", ["only this"], [{"text": "pin digests", "owner": "erin"}], "bob")
    # A completed review lets the SEV2 incident be closed without --no-review.
    await incidents.close_incident(client, incident, Closure(by="bob"))
    assert (await client.get_workflow_handle(incident).result())["status"] == "closed"
