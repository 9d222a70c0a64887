"""The blameless post-incident review of one incident, as data, from its durable record (docs/review.md).

The timeline is the incident's Temporal history (every run of it: incidentctl.review_timeline); what people wrote
(review text, notes, severity changes) and the lifecycle times come from its summary (incidentctl.summaries).
Neither needs a worker for a completed incident; for an open one without a worker the review says which parts
are missing instead of failing. `review_markdown` (incidentctl.review_markdown) renders it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from incidentctl.client import IncidentError
from incidentctl.dsl import expressions
from incidentctl.dsl.durations import format_duration
from incidentctl.dsl.plan import Plan
from incidentctl.history import IncidentHistory, incident_history
from incidentctl.incident_times import approval_waits, durations, incident_times, seconds_between
from incidentctl.review_timeline import AUTOMATED_KINDS, Story, chronological, plan_of, story_of
from incidentctl.summaries import FoundSummary, find_summary

if TYPE_CHECKING:
    from temporalio.client import Client

# Step outputs a runbook names to state what it found (e.g. `outputs: {root_cause: ...}`).
ROOT_CAUSE_OUTPUTS = ("root_cause", "summary")
# Approval waits at least this long are worth a line under "what to improve".
SLOW_APPROVAL_S = 300.0
TEXT_FIELDS = ("summary", "impact", "root_cause")
# An approval step's record status, as its outcome reads (a decided one says approved or rejected).
APPROVAL_OUTCOMES = {"running": "waiting", "superseded": "stood down", "succeeded": "approved", "failed": "rejected"}
LIST_FIELDS = ("what_went_well", "what_to_improve")


class ReviewEditError(ValueError):
    """A `--set` the review cannot take, as one sentence."""


async def load_review(client: Client, incident_id: str) -> tuple[dict[str, Any], IncidentHistory]:
    """The review, and the history it was built from (for posting it where the runbook sends messages)."""
    try:
        history = await incident_history(client, incident_id)
    except LookupError as exc:
        raise IncidentError(str(exc), "not_found") from None
    found = await find_summary(client, incident_id, run_id=history.runs[-1] if history.runs else None,
                               closed=history.closed, task_queue=history.task_queue, result=history.result,
                               latest_input=history.latest_input)
    return build_review(history, found), history


def build_review(history: IncidentHistory, found: FoundSummary, now: datetime | None = None) -> dict[str, Any]:
    plan = plan_of(history)
    story = story_of(history, plan)
    summary = found.summary or _history_only_summary(history, story)
    inp = history.first_input
    people = summary.get("review") or {}
    times, inferred = incident_times(summary, story.detected_at)
    severity_changes = summary.get("severity_changes") or [
        {k: e.get(k) for k in ("at", "from", "to")} for e in story.timeline if e["kind"] == "severity_changed"]
    steps = _steps(summary, story)
    approvals = _approvals(summary, story)
    review: dict[str, Any] = {
        "incident_id": history.incident_id,
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "summary": people.get("summary") or _generated_summary(summary, inp, plan),
        "status": summary.get("status"),
        "outcome": summary.get("outcome"),
        "runbook": {"name": summary.get("runbook") or (plan.runbook.name if plan else None),
                    "version": summary.get("runbook_version"), "plan_hash": summary.get("plan_hash"),
                    "runs": summary.get("runbook_runs") or []},
        "severity": {"current": summary.get("severity") or inp.get("severity"), "initial": inp.get("severity"),
                     "changes": severity_changes},
        "services": _services(summary, inp, story),
        "roles": summary.get("roles") or {},
        "impact": people.get("impact") or _statement(plan, "impact", summary, inp),
        "root_cause": _root_cause(people, plan, summary, inp, steps),
        "times": times,
        "durations": durations(times),
        "inferred_times": inferred,
        "resolution": summary.get("resolution"),
        "closed_by": summary.get("closed_by"),
        "timeline": _timeline(story, summary),
        "steps": steps,
        "approvals": approvals,
        "changes": story.changes,
        "alerts": list(story.alerts.values()),
        "messages": story.messages,
        "notes": summary.get("notes") or [],
        "commands": story.commands,
        "what_went_well": list(people.get("what_went_well") or []),
        "what_to_improve": list(people.get("what_to_improve") or []),
        "action_items": list(people.get("action_items") or []),
        "observed": _observations(summary, steps, approvals, story),
        "review_status": {"completed_by": people.get("completed_by"), "completed_at": people.get("completed_at")},
        "sources": {"history_runs": len(history.runs), "history_events": len(history.events),
                    "summary": found.source, "open": history.closed is None},
        "missing": list(found.missing),
    }
    review["to_do"] = _to_do(review)
    return review


def _history_only_summary(history: IncidentHistory, story: Story) -> dict[str, Any]:
    """What the history alone says of the summary's fields, when no summary could be had."""
    inp = history.first_input
    opened = next((e["at"] for e in story.timeline if e["kind"] == "incident_opened"), None)
    acked = next((c for c in story.commands if c["name"] == "acknowledge" and c["outcome"] == "accepted"), None)
    statuses = [e["to"] for e in story.timeline if e["kind"] == "status_changed"]
    return {"incident_id": history.incident_id, "severity": inp.get("severity"), "service": inp.get("service"),
            "params": inp.get("params"), "status": statuses[-1] if statuses else None,
            "started_at": opened, "times": {"opened_at": opened, "acknowledged_at": acked["at"] if acked else None}}


def _generated_summary(summary: dict[str, Any], inp: dict[str, Any], plan: Plan | None) -> str:
    runbook = summary.get("runbook") or (plan.runbook.name if plan else "?")
    service = summary.get("service") or inp.get("service")
    parts = [f"{summary.get('severity') or inp.get('severity')} incident handled by runbook {runbook}"
             + (f" for {service}" if service else "")]
    if summary.get("status"):
        parts.append(f"status {summary['status']}" + (f", outcome {summary['outcome']}" if summary.get("outcome")
                                                       else ""))
    failure = summary.get("failure")
    if failure:
        parts.append(f"step {failure.get('step')} failed: {failure.get('message')}")
    return "; ".join(parts) + "."


def _services(summary: dict[str, Any], inp: dict[str, Any], story: Story) -> list[str]:
    found = [summary.get("service") or inp.get("service")]
    found += [alert["labels"].get("service") for alert in story.alerts.values()]
    return list(dict.fromkeys(s for s in found if isinstance(s, str) and s))


def _context(summary: dict[str, Any], inp: dict[str, Any]) -> dict[str, Any]:
    """The names a runbook's communication statements may use, from the summary (as the engine offers them)."""
    steps = {key: {k: record.get(k) for k in ("status", "output", "error")}
             for key, record in (summary.get("steps") or {}).items()}
    return {"params": summary.get("params") or inp.get("params") or {}, "alert": inp.get("alert") or {},
            "steps": steps,
            "incident": {"id": summary.get("incident_id"), "severity": summary.get("severity"),
                         "runbook": summary.get("runbook"), "service": summary.get("service"),
                         "dry_run": summary.get("dry_run"), "started_at": summary.get("started_at"),
                         "alert_status": summary.get("alert_status"),
                         "refires": (summary.get("refires") or {}).get("count", 0)}}


def _statement(plan: Plan | None, name: str, summary: dict[str, Any], inp: dict[str, Any]) -> str | None:
    """The runbook's own `communication.<name>` statement about this incident, or None."""
    template = getattr(plan.communication, name, None) if plan and plan.communication else None
    if not template or not summary.get("steps"):
        return None
    try:
        text = expressions.render(template, _context(summary, inp))
    except expressions.ExpressionError:
        return None  # it names results this incident does not have
    return str(text) if text not in (None, "") else None


def _root_cause(people: dict[str, Any], plan: Plan | None, summary: dict[str, Any], inp: dict[str, Any],
                steps: list[dict[str, Any]]) -> dict[str, Any]:
    found = []
    for step in steps:
        output = step.get("output")
        if isinstance(output, dict):
            found += [{"step": step["step"], "output": name, "text": output[name]}
                      for name in ROOT_CAUSE_OUTPUTS if isinstance(output.get(name), str) and output[name]]
    failure = summary.get("failure")
    if not failure:
        failed = [s for s in steps if s.get("status") == "failed" or s.get("outcome") == "failed"]
        failure = ({"step": failed[-1]["step"], **(failed[-1].get("error") or {})} if failed else None)
    return {"stated": people.get("root_cause"), "stated_by_runbook": _statement(plan, "root_cause", summary, inp),
            "step_outputs": found, "failure": failure}


def _steps(summary: dict[str, Any], story: Story) -> list[dict[str, Any]]:
    """Every step: the summary's record (status, output, steps that run no action) joined with what its
    activities did according to history (times, attempts, outcome)."""
    records = sorted((summary.get("steps") or {}).items(), key=lambda item: item[1].get("seq", 0))
    steps: list[dict[str, Any]] = []
    seen: set[str] = set()
    for key, record in records:
        activity = story.steps.get(key)
        seen.add(key)
        entry = {"step": key, "kind": record.get("kind"), "status": record.get("status"),
                 "output": record.get("output"), "error": record.get("error")}
        if activity:
            entry.update({k: v for k, v in activity.items() if k not in ("step", "error")}, source="history")
            entry["error"] = record.get("error") or activity.get("error")
        else:
            entry.update(started_at=record.get("started_at"), finished_at=record.get("finished_at"), source="summary")
        entry["duration_s"] = seconds_between(entry.get("started_at"), entry.get("finished_at"))
        steps.append(entry)
    for key, activity in story.steps.items():
        if key not in seen:  # the summary is older than the history (carried state) or missing
            steps.append({**activity, "kind": None, "status": None, "source": "history",
                          "duration_s": seconds_between(activity["started_at"], activity["finished_at"])})
    return steps


def _approvals(summary: dict[str, Any], story: Story) -> list[dict[str, Any]]:
    """Each approval step: asked when, decided when, the wait, and every vote with who, what and why."""
    waits = {w["step"]: w for w in approval_waits(summary)}
    records = summary.get("steps") or {}
    asked = [key for key, record in sorted(records.items(), key=lambda item: item[1].get("seq", 0))
             if record.get("kind") == "approval" and record.get("status") != "skipped"]
    steps = list(dict.fromkeys([*asked, *waits, *(a["step"] for a in story.approvals if a.get("step"))]))
    approvals = []
    for step in steps:
        wait = waits.get(step, {})
        votes = [{k: a.get(k) for k in ("at", "approver", "approve", "comment", "outcome", "via", "reason")}
                 for a in story.approvals if a.get("step") == step]
        requested = wait.get("requested_at") or records.get(step, {}).get("started_at")
        # The server's time of the vote that settled it, when history has it; else the summary's.
        settling = [v for v in votes if v["outcome"] in ("approved", "rejected")]
        decided = settling[-1]["at"] if settling else wait.get("decided_at")
        approvals.append({"step": step, "requested_at": requested, "decided_at": decided,
                          "wait_s": seconds_between(requested, decided),
                          "outcome": wait.get("outcome") or APPROVAL_OUTCOMES.get(records.get(step, {}).get("status")),
                          "votes": votes})
    return approvals


def _timeline(story: Story, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The history's timeline, plus the steps that run no action (approvals, sleeps, branches), which only the
    summary records, marked as such."""
    extra = []
    for key, record in (summary.get("steps") or {}).items():
        if key in story.steps or not record.get("started_at"):
            continue
        if record.get("kind") == "approval":
            extra.append({"at": record["started_at"], "kind": "approval_requested", "step": key, "source": "summary"})
        extra.append({"at": record["started_at"], "kind": "step", "step": key, "step_kind": record.get("kind"),
                      "finished_at": record.get("finished_at"), "outcome": record.get("status"), "source": "summary"})
    return chronological(story.timeline + extra)


def _observations(summary: dict[str, Any], steps: list[dict[str, Any]], approvals: list[dict[str, Any]],
                  story: Story) -> dict[str, list[str]]:
    """Facts from the record worth a line in "what went well / what to improve": suggestions for the people
    writing the review, never a verdict on anyone."""
    well: list[str] = []
    improve: list[str] = []
    automated = [s for s in steps if s.get("kind") in AUTOMATED_KINDS or (s.get("kind") is None and s.get("action"))]
    succeeded = [s for s in automated if (s.get("status") or s.get("outcome")) == "succeeded"]
    if succeeded:
        well.append(f"{len(succeeded)} of {len(automated)} automated steps succeeded without a person's hand")
    for step in steps:
        if step.get("attempts", 0) > 1 and (step.get("status") or step.get("outcome")) == "succeeded":
            well.append(f"step {step['step']} succeeded after {step['attempts']} attempts (its retry policy held)")
        if (step.get("status") or step.get("outcome")) == "failed":
            error = step.get("error") or {}
            improve.append(f"step {step['step']} failed: {error.get('type', 'error')}: {error.get('message', '')}"
                           .rstrip(": "))
    if summary.get("status") == "rolled_back":
        well.append("the runbook's rollback ran and completed")
    roles = summary.get("roles") or {}
    if roles.get("acknowledged_by"):
        seconds = roles.get("time_to_ack_s")
        took = f" {format_duration(seconds)} after it opened" if isinstance(seconds, int | float) else ""
        well.append(f"the incident was acknowledged{took}")
    elif summary:
        improve.append("the incident was never acknowledged")
    for approval in approvals:
        if (approval.get("wait_s") or 0) >= SLOW_APPROVAL_S:
            improve.append(f"approval {approval['step']} waited {round(approval['wait_s'])}s for a decision")
    failed_messages = [m for m in story.messages if m["outcome"] != "succeeded"]
    if failed_messages:
        channels = sorted({m["channel"] for m in failed_messages})
        improve.append(f"{len(failed_messages)} message(s) could not be delivered ({', '.join(channels)})")
    return {"went_well": well, "to_improve": improve}


def _to_do(review: dict[str, Any]) -> list[str]:
    todo = []
    incident = review["incident_id"]
    if not review["root_cause"]["stated"]:
        todo.append(f"state the root cause: incidentctl incident review {incident} --set root_cause=\"...\"")
    if not review["action_items"]:
        todo.append(f"add action items: incidentctl incident review {incident} --set action_items=\"TEXT @OWNER\"")
    if not review["review_status"]["completed_by"]:
        todo.append(f"mark the review complete: incidentctl incident review {incident} --set completed=true")
    return todo


# ---------------------------------------------------------------- edits


def review_fields(assignments: list[str], current: dict[str, Any] | None = None, replace: bool = False
                  ) -> dict[str, Any]:
    """`--set NAME=VALUE` (repeatable) as ReviewEdit fields. A list field (what_went_well, what_to_improve,
    action_items) takes one item per `--set`, added to the review's `current` items unless `replace`;
    an action item is `TEXT @OWNER` (the owner is optional)."""
    current = current or {}
    fields: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise ReviewEditError(f"--set takes NAME=VALUE, got {assignment!r}")
        if not value:
            raise ReviewEditError(f"--set {name}= needs a value")
        if name in TEXT_FIELDS:
            fields[name] = value
        elif name in LIST_FIELDS or name == "action_items":
            item: Any = value if name != "action_items" else _action_item(value)
            if name not in fields:
                fields[name] = [] if replace else list(current.get(name) or [])
            if item not in fields[name]:
                fields[name].append(item)
        elif name == "completed":
            if value.lower() not in ("true", "false"):
                raise ReviewEditError(f"completed must be true or false, got {value!r}")
            fields[name] = value.lower() == "true"
        else:
            known = ", ".join([*TEXT_FIELDS, *LIST_FIELDS, "action_items", "completed"])
            raise ReviewEditError(f"the review has no field {name!r} (fields: {known})")
    return fields


def _action_item(value: str) -> dict[str, Any]:
    text, _, owner = value.rpartition(" @")
    if not text or " " in owner.strip() or not owner.strip():
        return {"text": value, "owner": None}
    return {"text": text.strip(), "owner": owner.strip()}


# ---------------------------------------------------------------- GitHub


async def post_to_github(history: IncidentHistory, review: dict[str, Any], markdown: str) -> dict[str, Any]:
    """Post the review's Markdown as a comment on the incident's GitHub issue, through the runbook's own
    `notify.github` channel (its repo, API URL and token variable). The same review posted twice is one comment;
    a review that changed since (new edits, new events) is a new one."""
    from activities.base import ActionInput
    from activities.notify.github import github_issue

    incident_id, plan = history.incident_id, plan_of(history)
    channels = [c for c in (plan.communication.channels if plan and plan.communication else [])
                if c.action == "notify.github"]
    if not channels:
        raise IncidentError(f"the runbook of {incident_id} has no GitHub channel (communication.channels with "
                            "type: github), so it has no issue to post the review to")
    content = {k: v for k, v in review.items() if k != "generated_at"}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
    inp = ActionInput(action="notify.github", incident_id=incident_id, step_id="review",
                      params={**channels[0].params, "message": markdown, "event": "message",
                              "key": f"{incident_id}/review/{digest}"})
    try:
        return await github_issue(inp)
    except Exception as exc:  # the action's own failure (ApplicationError), worded by it
        raise IncidentError(f"could not post the review to GitHub: {getattr(exc, 'message', exc)}",
                            "unreachable") from None
