"""The post-incident review's parts without a server: a recorded history (tests/histories) read event by event,
alerts, messages and changes from made-up events, milestones, `--set` edits and the carried-state summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory

from incidentctl.history import IncidentHistory, RecordedEvent, decode_run
from incidentctl.incident_times import durations, incident_times
from incidentctl.library import compile_text
from incidentctl.review import ReviewEditError, build_review, review_fields
from incidentctl.review_markdown import review_markdown
from incidentctl.review_timeline import story_of
from incidentctl.summaries import NONE, RESULT, FoundSummary, summary_from_carried
from workflows.state import IncidentState

RECORDED = Path(__file__).parent / "histories" / "full_runbook.json"


async def recorded() -> IncidentHistory:
    history = WorkflowHistory.from_json("incident-e2e-full-80883ca9", RECORDED.read_text())
    events = await decode_run(history)
    return IncidentHistory(history.workflow_id, [events[0].run_id], events, "incidentctl-tests", "completed")


def raw_activities() -> list[dict[str, Any]]:
    """The recorded history's activity events, read straight from its JSON (not through incidentctl.history)."""
    import base64

    scheduled: dict[str, dict[str, Any]] = {}
    for event in json.loads(RECORDED.read_text())["events"]:
        kind = event["eventType"].removeprefix("EVENT_TYPE_")
        if kind == "ACTIVITY_TASK_SCHEDULED":
            attrs = event["activityTaskScheduledEventAttributes"]
            inp = json.loads(base64.b64decode(attrs["input"]["payloads"][0]["data"]))
            scheduled[event["eventId"]] = {"step": inp["step_id"], "action": attrs["activityType"]["name"],
                                           "scheduled": event["eventTime"]}
        for end, outcome in (("ACTIVITY_TASK_COMPLETED", "succeeded"), ("ACTIVITY_TASK_FAILED", "failed")):
            if kind == end:
                attrs = event[f"activityTask{'Completed' if outcome == 'succeeded' else 'Failed'}EventAttributes"]
                scheduled[attrs["scheduledEventId"]].update(closed=event["eventTime"], outcome=outcome)
        if kind == "ACTIVITY_TASK_STARTED":
            attrs = event["activityTaskStartedEventAttributes"]
            scheduled[attrs["scheduledEventId"]]["attempt"] = attrs.get("attempt", 1)
    return list(scheduled.values())


def same_instant(iso: str, wire: str) -> bool:
    """An ISO time from the review and the history JSON's RFC 3339 one (nanoseconds) name the same microsecond."""
    from datetime import datetime

    seconds, _, fraction = wire.rstrip("Z").partition(".")
    wire_time = datetime.fromisoformat(f"{seconds}.{(fraction + '000000')[:6]}+00:00")
    return datetime.fromisoformat(iso) == wire_time


async def test_every_activity_of_the_history_is_a_step_with_its_times_and_outcome() -> None:
    history = await recorded()
    review = build_review(history, FoundSummary(history.result, RESULT))
    steps = {s["step"]: s for s in review["steps"]}
    activities = raw_activities()
    assert len(activities) == 11
    for activity in activities:
        step = steps[activity["step"]]
        assert step["action"] == activity["action"] and step["source"] == "history"
        assert same_instant(step["started_at"], activity["scheduled"])
        assert same_instant(step["finished_at"], activity["closed"])
        assert step["outcome"] == activity["outcome"] and step["attempts"] == activity["attempt"]
    assert steps["flaky"]["attempts"] == 3 and steps["flaky"]["status"] == "succeeded"
    assert steps["broken"]["error"] == {"type": "Boom", "message": "always broken"}
    # Steps that run no action come from the summary, and say so.
    assert (steps["gate"]["kind"], steps["gate"]["source"]) == ("approval", "summary")
    assert [s["step"] for s in review["timeline"] if s["kind"] == "step" and s.get("action")] == [
        a["step"] for a in sorted(activities, key=lambda a: a["scheduled"])]


async def test_approvals_come_from_the_updates_with_who_and_outcome() -> None:
    history = await recorded()
    review = build_review(history, FoundSummary(history.result, RESULT))
    gate, signal_gate = review["approvals"]
    assert gate["step"] == "gate" and gate["outcome"] == "approved"
    assert [(v["approver"], v["approve"], v["outcome"], v["via"]) for v in gate["votes"]] == [
        ("alice", True, "pending", "update"), ("bob", True, "approved", "update")]
    assert gate["decided_at"] == gate["votes"][-1]["at"] and gate["wait_s"] > 0
    assert [v["approver"] for v in signal_gate["votes"]] == ["carol"]
    statuses = [(e["from"], e["to"]) for e in review["timeline"] if e["kind"] == "status_changed"]
    assert statuses[0] == ("running", "waiting_approval") and statuses[-1] == ("running", "resolved")
    assert review["timeline"][0]["kind"] == "incident_opened"
    assert review["timeline"][-1] == {**review["timeline"][-1], "kind": "workflow_closed", "how": "completed"}
    assert review["root_cause"]["failure"] == {"step": "broken", "type": "Boom", "message": "always broken"}


async def test_markdown_has_every_section_and_the_story() -> None:
    history = await recorded()
    text = review_markdown(build_review(history, FoundSummary(history.result, RESULT)))
    for section in ("# Post-incident review: incident-e2e-full-80883ca9", "## Impact", "## Root cause", "## Times",
                    "## Timeline", "## Steps", "## Approvals", "## Changes made", "## Alerts", "## Messages sent",
                    "## Notes", "## What went well", "## What to improve", "## Action items", "## Still to do"):
        assert f"\n{section}\n" in f"\n{text}", section
    assert "| bob approved `gate` → approved |" in text
    assert "step `flaky` (util.fail) → **succeeded** in 2.0s after 3 attempts" in text
    assert "Failure: step `broken`: Boom: always broken" in text
    assert "to improve: step broken failed: Boom: always broken" in text


async def test_without_a_summary_the_review_is_built_from_history_and_says_what_is_missing() -> None:
    history = await recorded()
    found = FoundSummary(None, NONE, ["no worker is polling task queue 'q'"])
    review = build_review(history, found)
    assert review["missing"] == ["no worker is polling task queue 'q'"]
    assert review["sources"]["summary"] == NONE
    assert review["times"]["opened_at"] == review["timeline"][0]["at"]
    assert {s["step"] for s in review["steps"]} >= {"diagnose", "broken", "verify"}
    assert all(s["status"] is None for s in review["steps"]), "step statuses are the summary's"
    assert "Missing:" in review_markdown(review)
    json.dumps(review)  # the JSON form is plain data


def event(event_id: int, at: str, kind: str, **data: Any) -> RecordedEvent:
    return RecordedEvent(run_id="r1", event_id=event_id, at=f"2024-05-01T10:{at}+00:00", type=kind, data=data)


def notification(event_id: int, at: str, *alerts: dict[str, Any]) -> list[RecordedEvent]:
    return [event(event_id, at, "WORKFLOW_EXECUTION_UPDATE_ACCEPTED", update_id=f"u{event_id}",
                  name="alert_notification", args=[{"alerts": list(alerts)}]),
            event(event_id + 1, at, "WORKFLOW_EXECUTION_UPDATE_COMPLETED", update_id=f"u{event_id}",
                  accepted_event_id=event_id, result={})]


def activity(event_id: int, at: str, end: str, action: str, step_id: str, outcome: str = "ACTIVITY_TASK_COMPLETED",
             params: dict[str, Any] | None = None, result: Any = None) -> list[RecordedEvent]:
    return [event(event_id, at, "ACTIVITY_TASK_SCHEDULED", activity_id=str(event_id), activity_type=action,
                  input={"action": action, "step_id": step_id, "params": params or {}}),
            event(event_id + 1, at, "ACTIVITY_TASK_STARTED", scheduled_event_id=event_id, attempt=1),
            event(event_id + 2, end, outcome, scheduled_event_id=event_id,
                  **({"result": result} if outcome == "ACTIVITY_TASK_COMPLETED" else
                     {"error": {"type": "HTTPStatus", "message": "answered 500"}}))]


def test_alerts_messages_changes_and_people_commands() -> None:
    firing = {"fingerprint": "f1", "status": "firing", "labels": {"alertname": "KubePodCrashLooping",
                                                                  "service": "cart"},
              "startsAt": "2024-05-01T09:58:30.5Z"}
    earlier = {"fingerprint": "f2", "status": "firing", "labels": {"alertname": "Other"},
               "startsAt": "2024-05-01T09:57:00Z"}
    events = [
        event(1, "00:00", "WORKFLOW_EXECUTION_STARTED", input={"severity": "SEV2", "started_by": "receiver",
                                                               "service": "cart"},
              search_attributes={"IncidentStatus": "running", "IncidentSeverity": "SEV2"}),
        *notification(2, "00:00", firing),
        *notification(4, "00:30", firing, earlier),  # f1 repeats: counted, not a new event
        *activity(10, "01:00", "01:05", "notify.webhook", "comms:opened:1", params={"message": "opened", "key": "k"}),
        *activity(20, "01:00", "01:09", "notify.slack", "comms:opened:1", "ACTIVITY_TASK_FAILED"),
        *activity(30, "02:00", "02:40", "k8s.rollout_undo", "rollback",
                  result={"before": {"revision": 2}, "after": {"revision": 3}, "changed": True, "dry_run": False}),
        event(40, "03:00", "WORKFLOW_EXECUTION_UPDATE_ACCEPTED", update_id="n", name="note",
              args=[{"by": "alice", "text": "pods are back"}]),
        event(41, "03:00", "WORKFLOW_EXECUTION_UPDATE_COMPLETED", update_id="n", accepted_event_id=40, result={}),
        event(42, "03:10", "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", search_attributes={"IncidentSeverity": "SEV1"}),
        *notification(50, "04:00", {**firing, "status": "resolved", "endsAt": "2024-05-01T10:03:55Z"}),
    ]
    story = story_of(IncidentHistory("i", ["r1"], events), plan=None)
    assert story.detected_at == "2024-05-01T09:57:00+00:00", "the earliest startsAt of any alert"
    kinds = [(e["kind"], e.get("alertname") or e.get("channel") or e.get("step") or e.get("name")) for e in
             story.timeline]
    assert kinds == [("incident_opened", None), ("alert_firing", "KubePodCrashLooping"), ("alert_firing", "Other"),
                     ("message_sent", "notify.webhook"), ("message_failed", "notify.slack"),
                     ("step", "rollback"), ("command", "note"), ("severity_changed", None),
                     ("alert_resolved", "KubePodCrashLooping")]
    assert story.alerts["f1"]["notifications"] == 3 and story.alerts["f1"]["resolved_at"].startswith("2024-05-01T10:04")
    [change] = story.changes
    assert (change["step"], change["before"], change["after"], change["changed"]) == (
        "rollback", {"revision": 2}, {"revision": 3}, True)
    assert [(m["channel"], m["event"], m["outcome"]) for m in story.messages] == [
        ("notify.webhook", "opened", "succeeded"), ("notify.slack", "opened", "failed")]
    assert story.commands[0]["by"] == "alice" and story.commands[0]["outcome"] == "accepted"
    review = build_review(IncidentHistory("i", ["r1"], events), FoundSummary(None, NONE))
    assert review["services"] == ["cart"]
    assert review["severity"]["changes"] == [{"at": "2024-05-01T10:03:10+00:00", "from": "SEV2", "to": "SEV1"}]
    assert review["durations"]["time_to_detect_s"] == 180
    assert "1 message(s) could not be delivered (notify.slack)" in review["observed"]["to_improve"]
    text = review_markdown(review)
    assert "| rollback | k8s.rollout_undo |" in text and '{"revision":2}' in text
    assert 'alice: note {"text":"pods are back"}' in text


def test_lifecycle_times_win_and_old_incidents_are_inferred() -> None:
    recorded_times = {"times": {"opened_at": "2024-05-01T10:00:00+00:00", "acknowledged_at": None,
                                "mitigated_at": "2024-05-01T10:05:00+00:00", "resolved_at": None},
                      "started_at": "2024-05-01T09:00:00+00:00", "status": "mitigated"}
    times, inferred = incident_times(recorded_times, detected_at="2024-05-01T09:59:00+00:00")
    assert times["opened_at"] == "2024-05-01T10:00:00+00:00" and times["resolved_at"] is None
    assert inferred == ["detected_at: the earliest startsAt of the incident's alerts, from its history"]
    assert durations(times) == {"time_to_detect_s": 60, "time_to_acknowledge_s": None, "time_to_mitigate_s": 300,
                                "time_to_resolve_s": None, "time_to_close_s": None}
    old = {"started_at": "2024-05-01T10:00:00+00:00", "finished_at": "2024-05-01T10:02:00+00:00",
           "status": "rolled_back", "roles": {"acknowledged_at": "2024-05-01T10:00:30+00:00"}}
    times, inferred = incident_times(old)
    assert (times["mitigated_at"], times["resolved_at"]) == (None, None)
    assert times["needs_attention_at"] == times["closed_at"] == "2024-05-01T10:02:00+00:00"
    assert durations(times)["time_to_acknowledge_s"] == 30
    assert all("predates lifecycle times" in line or "roles" in line or "workflow" in line for line in inferred)


def test_set_edits_become_review_fields() -> None:
    current = {"what_went_well": ["rollback was fast"], "action_items": [{"text": "add canary", "owner": "dana"}]}
    fields = review_fields(["root_cause=bad image 1.4.3", "what_went_well=the alert fired in 1m",
                            "action_items=pin image digests @erin", "action_items=write the runbook",
                            "completed=true"], current)
    assert fields == {"root_cause": "bad image 1.4.3",
                      "what_went_well": ["rollback was fast", "the alert fired in 1m"],
                      "action_items": [{"text": "add canary", "owner": "dana"},
                                       {"text": "pin image digests", "owner": "erin"},
                                       {"text": "write the runbook", "owner": None}],
                      "completed": True}
    assert review_fields(["what_went_well=only this"], current, replace=True) == {"what_went_well": ["only this"]}
    for bad, message in (("rootcause=x", "the review has no field 'rootcause'"), ("impact", "--set takes NAME=VALUE"),
                         ("impact=", "--set impact= needs a value"), ("completed=yes", "completed must be true or")):
        with pytest.raises(ReviewEditError, match=message):
            review_fields([bad])


def test_the_state_carried_by_continue_as_new_is_a_summary() -> None:
    plan = compile_text("name: carry\nversion: 2\nsteps:\n  - id: a\n    action: util.echo\n"
                        "    params: {message: hi}\n", "carry.yaml")
    state = IncidentState(status="running", started_at="2024-05-01T10:00:00+00:00", runs=2,
                          records={"a": {"kind": "action", "status": "succeeded", "seq": 1, "output": {"m": 1}}})
    inp = {"incident_id": "incident-carry-x", "plan": plan.wire_json, "severity": "SEV2", "service": "cart",
           "carried": state.carry(), "a_field_from_newer_code": True}
    summary = summary_from_carried(inp)
    assert summary is not None
    assert (summary["runbook"], summary["runbook_version"], summary["runs"]) == ("carry", "2", 2)
    assert summary["steps"]["a"]["output"] == {"m": 1}
    assert summary_from_carried({"plan": plan.wire_json}) is None


async def test_the_lifecycle_fields_of_the_summary_flow_into_the_review() -> None:
    """A summary shaped as docs/review.md and the lifecycle interface describe it (fields today's engine lacks)."""
    history = await recorded()
    summary = dict(history.result or {})
    opened, finished = summary["started_at"], summary["finished_at"]
    summary.update(
        status="closed", outcome="succeeded", closed_by="alice",
        times={"opened_at": opened, "acknowledged_at": None, "mitigated_at": finished, "resolved_at": finished,
               "closed_at": finished},
        severity_changes=[{"at": opened, "by": "bob", "from": "SEV3", "to": "SEV2", "reason": "checkout fails"}],
        notes=[{"at": opened, "by": "bob", "text": "looking at the rollout"}],
        runbook_runs=[{"runbook": "e2e-full", "version": "1", "started_at": opened, "finished_at": finished,
                       "outcome": "succeeded", "by": "receiver"}],
        resolution={"at": finished, "by": "alerts", "summary": "alerts resolved"},
        review={"summary": "A bad rollout of cart.", "impact": "checkout errors for 3 minutes",
                "root_cause": "image 1.4.3", "what_went_well": ["the rollback"], "what_to_improve": ["canaries"],
                "action_items": [{"text": "add a canary step", "owner": "dana"}], "completed_by": "alice",
                "completed_at": finished})
    review = build_review(history, FoundSummary(summary, RESULT))
    assert (review["summary"], review["impact"], review["root_cause"]["stated"]) == (
        "A bad rollout of cart.", "checkout errors for 3 minutes", "image 1.4.3")
    assert review["inferred_times"] == [], "every milestone the summary has is recorded, none inferred"
    assert review["durations"]["time_to_acknowledge_s"] is None and review["durations"]["time_to_close_s"] > 0
    assert review["to_do"] == []
    text = review_markdown(review)
    for line in ("| Status | closed (outcome: succeeded) |", "| Closed by | alice |",
                 "SEV3 → SEV2 at", "by bob (checkout fails)", "- **Stated:** image 1.4.3",
                 "| add a canary step | dana |",
                 "bob: looking at the rollout", "- the rollback\n", "- canaries\n", "Review completed by alice",
                 "| Resolved | by alerts: alerts resolved |", "e2e-full v1", ": succeeded (by receiver)"):
        assert line in text, line
    assert "## Still to do" not in text
