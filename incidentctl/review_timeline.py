"""What an incident's history says happened, as the review's timeline: pure, over decoded history events.

Each runbook step that ran an action is the activity executions its step id names (the ActionInput's `step_id`;
the activity type is the action): scheduled, started (with the attempt that finished), completed, failed or
timed out, with the server's times. Approvals are the `decide_approval` updates (accepted, then completed with
the receipt) and `approve` signals; alerts are the `alert_notification` updates; messages are the communication
activities (step id `comms:<event>:<seq>`); status changes are the IncidentStatus upserts; every other update is
a people command, named by its update name. Nothing here reads the workflow's own account of itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from incidentctl.dsl.plan import Plan, walk_steps
from incidentctl.history import CLOSINGS, IncidentHistory, RecordedEvent
from incidentctl.incident_times import parse_time

COMMS_PREFIX = "comms:"
APPROVAL_UPDATE, APPROVAL_SIGNAL, ALERT_UPDATE = "decide_approval", "approve", "alert_notification"
# Timeline kinds of people commands the review knows by name; any other update is a "command" with its name.
COMMAND_KINDS = {"assign": "assigned", "acknowledge": "acknowledged", "update_review": "review_updated"}
STATUS_KEY, SEVERITY_KEY = "IncidentStatus", "IncidentSeverity"
# Step kinds whose work is an action's (not approvals, sleeps or the containers around other steps).
AUTOMATED_KINDS = ("action", "check", "wait_until", "notify")
NEVER = datetime.min.replace(tzinfo=UTC)
ACTIVITY_ENDS = {"ACTIVITY_TASK_COMPLETED": "succeeded", "ACTIVITY_TASK_FAILED": "failed",
                 "ACTIVITY_TASK_TIMED_OUT": "timed_out", "ACTIVITY_TASK_CANCELED": "cancelled"}


@dataclass
class Story:
    """The incident as its history tells it."""

    timeline: list[dict[str, Any]] = field(default_factory=list)  # chronological
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)  # step key -> what its activities did
    approvals: list[dict[str, Any]] = field(default_factory=list)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> firing/resolved story
    messages: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)  # mutating actions with before/after
    commands: list[dict[str, Any]] = field(default_factory=list)
    detected_at: str | None = None  # earliest alert startsAt

    def add(self, at: str | None, kind: str, **detail: Any) -> dict[str, Any]:
        entry = {"at": at, "kind": kind, **{k: v for k, v in detail.items() if v is not None}}
        self.timeline.append(entry)
        return entry


def plan_of(history: IncidentHistory) -> Plan | None:
    plan = history.first_input.get("plan")
    try:
        return Plan.from_json(plan) if isinstance(plan, dict) else None
    except (ValueError, TypeError, KeyError):
        return None  # a plan format this version cannot read: steps are still named by their ids


def _mutating_actions(plan: Plan | None) -> set[str]:
    if plan is None:
        return set()
    return {s.action for s in walk_steps([*plan.steps, *plan.rollback]) if s.mutates and s.action}


def _executions(events: list[RecordedEvent]) -> list[dict[str, Any]]:
    """Every activity execution: its scheduling, its (last) start and its end, joined by scheduled event id."""
    by_scheduled: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        data = event.data
        if event.type == "ACTIVITY_TASK_SCHEDULED":
            inp = data.get("input")
            by_scheduled[(event.run_id, event.event_id)] = {
                "activity": data["activity_type"], "input": inp if isinstance(inp, dict) else {"value": inp},
                "scheduled_at": event.at, "started_at": None, "closed_at": None, "outcome": "scheduled",
                "attempts": 0, "event_ids": [event.event_id], "run_id": event.run_id,
            }
            continue
        execution = by_scheduled.get((event.run_id, data.get("scheduled_event_id", -1)))
        if execution is None:
            continue
        execution["event_ids"].append(event.event_id)
        if event.type == "ACTIVITY_TASK_STARTED":
            execution.update(started_at=event.at, attempts=data.get("attempt", 1), outcome="running")
            if data.get("last_failure"):
                execution["retried_after"] = data["last_failure"]
        elif event.type in ACTIVITY_ENDS:
            execution.update(closed_at=event.at, outcome=ACTIVITY_ENDS[event.type])
            if "result" in data:
                execution["result"] = data["result"]
            if "error" in data:
                execution["error"] = data["error"]
    return sorted(by_scheduled.values(), key=lambda x: (x["scheduled_at"], x["event_ids"][0]))


def _step_entry(key: str, runs: list[dict[str, Any]], mutating: set[str]) -> dict[str, Any]:
    last = runs[-1]
    action = last["activity"]
    entry: dict[str, Any] = {
        "step": key, "action": action, "started_at": runs[0]["scheduled_at"], "finished_at": last["closed_at"],
        "outcome": last["outcome"], "attempts": sum(r["attempts"] for r in runs), "executions": len(runs),
        "mutating": action in mutating, "activities": [_public(r) for r in runs],
    }
    if last.get("error"):
        entry["error"] = last["error"]
    result = last.get("result")
    if isinstance(result, dict) and ("before" in result or "after" in result):
        entry["change"] = {k: result.get(k) for k in ("before", "after", "changed", "dry_run")}
    return entry


def _public(execution: dict[str, Any]) -> dict[str, Any]:
    """An execution as the review shows it: without the action's input (params may be large) or its result."""
    return {k: v for k, v in execution.items() if k not in ("input", "result", "activity")}


def _activities(story: Story, events: list[RecordedEvent], plan: Plan | None) -> None:
    mutating = _mutating_actions(plan)
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for execution in _executions(events):
        step_id = execution["input"].get("step_id")
        if not isinstance(step_id, str) or not step_id:
            continue  # the engine's own lookups (earlier runs of the key), not a step of the incident
        grouped.setdefault((step_id, execution["activity"]), []).append(execution)
    for (step_id, action), runs in grouped.items():
        if step_id.startswith(COMMS_PREFIX):
            _, event, seq = (step_id.split(":") + ["", ""])[:3]
            for run in runs:
                params = run["input"].get("params") or {}
                story.messages.append({
                    "at": run["scheduled_at"], "sent_at": run["closed_at"], "event": event, "seq": seq,
                    "channel": action, "outcome": run["outcome"], "attempts": run["attempts"],
                    "error": run.get("error"), "text": params.get("message"), "key": params.get("key"),
                })
            continue
        entry = _step_entry(step_id, runs, mutating)
        story.steps[step_id] = entry
        story.add(entry["started_at"], "step", step=step_id, action=action, finished_at=entry["finished_at"],
                  outcome=entry["outcome"], attempts=entry["attempts"], error=entry.get("error"),
                  change=entry.get("change"))
        if entry.get("change") or entry["mutating"]:
            story.changes.append({"step": step_id, "action": action, "at": entry["finished_at"],
                                  **(entry.get("change") or {}), "outcome": entry["outcome"]})
        if action.startswith("notify."):
            params = runs[-1]["input"].get("params") or {}
            story.messages.append({"at": entry["started_at"], "sent_at": entry["finished_at"], "event": "step",
                                   "step": step_id, "channel": action, "outcome": entry["outcome"],
                                   "attempts": entry["attempts"], "error": entry.get("error"),
                                   "text": params.get("message")})
    story.messages.sort(key=lambda m: m["at"])
    for message in story.messages:
        story.add(message["at"], "message_sent" if message["outcome"] == "succeeded" else "message_failed",
                  channel=message["channel"], event=message["event"], step=message.get("step"),
                  error=message.get("error"))


def _alert(story: Story, at: str, alert: dict[str, Any]) -> None:
    labels = alert.get("labels") or {}
    fingerprint = alert.get("fingerprint") or ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    status = alert.get("status", "firing")
    starts = parse_time(alert.get("startsAt"))
    earliest = parse_time(story.detected_at)
    if starts and (earliest is None or starts < earliest):
        story.detected_at = starts.isoformat()
    known = story.alerts.get(fingerprint)
    if known is None:
        known = story.alerts[fingerprint] = {
            "fingerprint": fingerprint, "alertname": labels.get("alertname"), "labels": labels,
            "starts_at": alert.get("startsAt"), "status": status, "first_seen": at, "notifications": 0,
            "fired": 0, "resolved": 0, "resolved_at": None,
        }
    elif known["status"] == status:
        known["notifications"] += 1  # a repeat: counted, not a story event
        return
    known["notifications"] += 1
    known["status"] = status
    known["fired" if status == "firing" else "resolved"] += 1
    if status == "resolved":
        known["resolved_at"] = at
    story.add(at, f"alert_{status}", alertname=labels.get("alertname"), fingerprint=fingerprint,
              starts_at=alert.get("startsAt"), ends_at=alert.get("endsAt") if status == "resolved" else None)


def _updates(story: Story, events: list[RecordedEvent]) -> None:
    completions = {e.data["update_id"]: e for e in events if e.type == "WORKFLOW_EXECUTION_UPDATE_COMPLETED"}
    for event in events:
        if event.type == "WORKFLOW_EXECUTION_SIGNALED":
            _signal(story, event)
        if event.type != "WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
            continue
        name, args = event.data["name"], event.data.get("args") or []
        arg = args[0] if args and isinstance(args[0], dict) else {}
        done = completions.get(event.data["update_id"])
        error = done.data.get("error") if done else None
        result = done.data.get("result") if done else None
        ids = [event.event_id] + ([done.event_id] if done else [])
        if name == ALERT_UPDATE:
            if not error:
                for alert in arg.get("alerts") or []:
                    if isinstance(alert, dict):
                        _alert(story, event.at, alert)
            continue
        if name == APPROVAL_UPDATE:
            receipt = result if isinstance(result, dict) else {}
            approval = {
                "at": event.at, "step": receipt.get("step") or arg.get("step") or None,
                "approver": arg.get("approver"), "approve": arg.get("approve"), "comment": arg.get("comment") or "",
                "outcome": receipt.get("outcome") if done and not error else ("refused" if error else "in flight"),
                "via": "update", "event_ids": ids,
            }
            if error:
                approval["reason"] = error.get("message")
            story.approvals.append(approval)
            story.add(event.at, "approval_refused" if error else "approval_decided",
                      **{k: v for k, v in approval.items() if k != "at"})
            continue
        command = {"at": event.at, "name": name, "by": arg.get("by"), "args": arg,
                   "outcome": "refused" if error else ("accepted" if done else "in flight"),
                   "reason": error.get("message") if error else None, "event_ids": ids}
        story.commands.append(command)
        story.add(event.at, COMMAND_KINDS.get(name, "command"), **{k: v for k, v in command.items() if k != "at"})


def _signal(story: Story, event: RecordedEvent) -> None:
    args = event.data.get("args") or []
    arg = args[0] if args and isinstance(args[0], dict) else {}
    if event.data["name"] == APPROVAL_SIGNAL:
        # The signal path checks the vote inside the workflow: whether it counted is in the summary, not here.
        approval = {"at": event.at, "step": arg.get("step") or None, "approver": arg.get("approver"),
                    "approve": arg.get("approve"), "comment": arg.get("comment") or "", "outcome": None,
                    "via": "signal", "event_ids": [event.event_id]}
        story.approvals.append(approval)
        story.add(event.at, "approval_signalled", **{k: v for k, v in approval.items() if k != "at"})
        return
    story.add(event.at, "signal", name=event.data["name"], args=arg or args or None)


def _lifecycle(story: Story, events: list[RecordedEvent], inp: dict[str, Any]) -> None:
    status: str | None = None
    severity: str | None = None
    first_start = True
    for event in events:
        attributes = event.data.get("search_attributes") or {}
        if event.type == "WORKFLOW_EXECUTION_STARTED":
            if first_start:
                story.add(event.at, "incident_opened", by=inp.get("started_by") or None,
                          severity=inp.get("severity"), service=inp.get("service") or None,
                          dry_run=inp.get("dry_run") or None, run_id=event.run_id)
                first_start = False
                alert = inp.get("alert")
                if isinstance(alert, dict) and (alert.get("labels") or alert.get("fingerprint")):
                    _alert(story, event.at, alert)
        elif event.type == "WORKFLOW_EXECUTION_CANCEL_REQUESTED":
            story.add(event.at, "cancel_requested", by=event.data.get("identity") or None)
        elif event.type in CLOSINGS:
            detail = event.data.get("error") or ({"reason": event.data["reason"]} if event.data.get("reason") else {})
            story.add(event.at, "continued_as_new" if event.type == "WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
                      else "workflow_closed", how=CLOSINGS[event.type], run_id=event.run_id, **detail)
        new_status, new_severity = attributes.get(STATUS_KEY), attributes.get(SEVERITY_KEY)
        if isinstance(new_status, str) and new_status != status:
            if status is not None or event.type != "WORKFLOW_EXECUTION_STARTED":
                story.add(event.at, "status_changed", **{"from": status, "to": new_status})
            status = new_status
        if isinstance(new_severity, str) and new_severity != severity:
            if severity is not None:
                story.add(event.at, "severity_changed", **{"from": severity, "to": new_severity})
            severity = new_severity


def story_of(history: IncidentHistory, plan: Plan | None = None) -> Story:
    """The incident's timeline and its parts, from every run of its history."""
    story = Story()
    events = history.events
    _lifecycle(story, events, history.first_input)
    _updates(story, events)
    _activities(story, events, plan if plan is not None else plan_of(history))
    story.timeline = chronological(story.timeline)
    return story


def chronological(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ordered by time (a time-zone-aware sort, not by text); entries at the same instant keep their order."""
    return sorted(entries, key=lambda e: parse_time(e["at"]) or NEVER)
