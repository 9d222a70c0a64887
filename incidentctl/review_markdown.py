"""The post-incident review (incidentctl.review) as Markdown: for people, for the GitHub issue, for the archive."""

from __future__ import annotations

import json
from typing import Any

from incidentctl.dsl.durations import format_duration
from incidentctl.incident_times import DURATIONS, MILESTONES, parse_time, seconds_between

# Before/after states and outputs can be large: the review shows this much of each, the JSON form all of it.
MAX_VALUE_CHARS = 400


def _time(value: Any) -> str:
    parsed = parse_time(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S") + "Z" if parsed else "—"


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f}s" if abs(seconds) < 10 else format_duration(seconds)


def _cell(value: Any) -> str:
    """A value fit for one table cell: one line, pipes escaped, long values cut."""
    if value is None or value == "":
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"), sort_keys=True)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines + [""]


def _bullets(items: list[str], empty: str) -> list[str]:
    return [f"- {item}" for item in items] + [""] if items else [f"_{empty}_", ""]


def _event_text(entry: dict[str, Any]) -> str:
    kind = entry["kind"]
    if kind == "step":
        took = _span(seconds_between(entry.get("at"), entry.get("finished_at")))
        what = entry.get("action") or entry.get("step_kind") or "step"
        tail = f" after {entry['attempts']} attempts" if (entry.get("attempts") or 0) > 1 else ""
        error = entry.get("error") or {}
        failure = f": {error.get('type')}: {error.get('message')}" if error else ""
        return f"step `{entry['step']}` ({what}) → **{entry.get('outcome')}** in {took}{tail}{failure}"
    if kind in ("approval_decided", "approval_signalled", "approval_refused"):
        verb = "approved" if entry.get("approve") else "rejected"
        text = f"{entry.get('approver')} {verb} `{entry.get('step')}`"
        text += f" (“{entry['comment']}”)" if entry.get("comment") else ""
        if kind == "approval_refused":
            return f"refused: {text}: {entry.get('reason')}"
        return text + (f" → {entry['outcome']}" if entry.get("outcome") else " (by signal)")
    if kind == "approval_requested":
        return f"approval requested for `{entry.get('step')}`"
    if kind.startswith("alert_"):
        return f"alert {entry.get('alertname') or entry.get('fingerprint')} {kind.removeprefix('alert_')}" + (
            f" (started {_time(entry['starts_at'])})" if entry.get("starts_at") and kind == "alert_firing" else "")
    if kind in ("message_sent", "message_failed"):
        about = f"step `{entry['step']}`" if entry.get("step") else f"“{entry.get('event')}” message"
        sent = "sent" if kind == "message_sent" else f"NOT sent ({(entry.get('error') or {}).get('message')})"
        return f"{about} {sent} via {entry.get('channel')}"
    if kind == "status_changed":
        return f"status {entry.get('from')} → **{entry.get('to')}**"
    if kind == "severity_changed":
        return f"severity {entry.get('from')} → **{entry.get('to')}**"
    if kind == "incident_opened":
        by = f" by {entry['by']}" if entry.get("by") else ""
        return f"incident opened{by} ({entry.get('severity')}{', dry run' if entry.get('dry_run') else ''})"
    if kind in ("workflow_closed", "continued_as_new"):
        return "continued in a new run (continue-as-new)" if kind == "continued_as_new" else (
            f"workflow ended: {entry.get('how')}" + (f": {entry['message']}" if entry.get("message") else ""))
    if kind == "acknowledged":
        return f"acknowledged by {entry.get('by')}" + (f" — refused: {entry.get('reason')}"
                                                      if entry.get("outcome") == "refused" else "")
    if kind == "review_updated":
        fields = ", ".join(sorted((entry.get("args") or {}).get("fields") or {}))
        return f"review edited by {entry.get('by')}: {fields}"
    if "by" in entry or "name" in entry:  # a people command
        args = {k: v for k, v in (entry.get("args") or {}).items() if k != "by"}
        refused = f" — refused: {entry.get('reason')}" if entry.get("outcome") == "refused" else ""
        return f"{entry.get('by') or '?'}: {entry.get('name') or kind} {_cell(args)}{refused}"
    return f"{kind} {_cell({k: v for k, v in entry.items() if k not in ('at', 'kind')})}"


def review_markdown(review: dict[str, Any]) -> str:
    out: list[str] = [f"# Post-incident review: {review['incident_id']}", "",
                      "_Blameless: this review describes what happened and how the system and the process behaved, "
                      "so that they can be improved; it does not judge people._", "", review["summary"], ""]
    severity = review["severity"]
    changes = "; ".join(f"{c.get('from')} → {c.get('to')} at {_time(c.get('at'))}"
                        + (f" by {c['by']}" if c.get("by") else "") + (f" ({c['reason']})" if c.get("reason") else "")
                        for c in severity["changes"])
    runbook = review["runbook"]
    roles = review["roles"]
    out += _table(["", ""], [
        ["Status", f"{review.get('status') or 'unknown'}"
         + (f" (outcome: {review['outcome']})" if review.get("outcome") else "")],
        ["Severity", f"{severity['current']}" + (f" (started {severity['initial']}; {changes})" if changes else "")],
        ["Service(s)", ", ".join(review["services"]) or None],
        ["Runbook", f"{runbook.get('name')} v{runbook.get('version')}"
         + (f", plan {str(runbook['plan_hash'])[:12]}" if runbook.get("plan_hash") else "")],
        ["Runbook runs", "; ".join(f"{r.get('runbook')} v{r.get('version')} {_time(r.get('started_at'))}: "
                                   f"{r.get('outcome') or 'running'}" + (f" (by {r['by']})" if r.get("by") else "")
                                   for r in runbook.get("runs") or []) or None],
        ["Commander / assignee", f"{roles.get('commander') or '—'} / {roles.get('assignee') or '—'}"],
        ["Resolved", (f"by {review['resolution'].get('by')}: {review['resolution'].get('summary') or ''}"
                      if review.get("resolution") else None)],
        ["Closed by", review.get("closed_by")],
    ])
    out += ["## Impact", "", review.get("impact") or "_not stated yet_", ""]
    out += _root_cause(review["root_cause"])
    out += ["## Times", ""]
    times, spans = review["times"], review["durations"]
    out += _table(["Milestone", "At (UTC)", "Since opened"],
                  [[name.removesuffix("_at").replace("_", " "), _time(times.get(name)),
                    _span(seconds_between(times.get("opened_at"), times.get(name)))]
                   for name in MILESTONES if times.get(name)])
    out += _table(["Duration", "Value"], [[name.removesuffix("_s").replace("_", " "), _span(spans.get(name))]
                                          for name in DURATIONS])
    if review["inferred_times"]:
        out += ["Inferred, not recorded:", ""] + _bullets(review["inferred_times"], "")
    out += ["## Timeline", ""]
    out += _table(["At (UTC)", "What happened"], [[_time(e["at"]), _event_text(e)] for e in review["timeline"]])
    out += ["## Steps", ""]
    out += _table(["Step", "Kind / action", "Started", "Finished", "Took", "Attempts", "Outcome", "Error"], [
        [s["step"], s.get("action") or s.get("kind"), _time(s.get("started_at")), _time(s.get("finished_at")),
         _span(s.get("duration_s")), s.get("attempts"), s.get("status") or s.get("outcome"),
         (s.get("error") or {}).get("message")] for s in review["steps"]])
    out += ["## Approvals", ""]
    out += _table(["Step", "Requested", "Decided", "Waited", "Outcome", "Votes"], [
        [a["step"], _time(a.get("requested_at")), _time(a.get("decided_at")), _span(a.get("wait_s")), a.get("outcome"),
         "; ".join(f"{v['approver']} {'approved' if v['approve'] else 'rejected'}"
                   + (f" (“{v['comment']}”)" if v.get("comment") else "") for v in a["votes"])]
        for a in review["approvals"]]) if review["approvals"] else ["_no approvals_", ""]
    out += ["## Changes made", ""]
    out += _table(["Step", "Action", "At", "Outcome", "Before", "After"], [
        [c["step"], c["action"], _time(c.get("at")), c.get("outcome") + (" (dry run)" if c.get("dry_run") else ""),
         c.get("before"), c.get("after")] for c in review["changes"]]) if review["changes"] else [
        "_no mutating action ran_", ""]
    out += ["## Alerts", ""]
    out += _table(["Alert", "Started", "First seen", "Resolved", "Notifications", "Fired"], [
        [a.get("alertname") or a["fingerprint"], _time(a.get("starts_at")), _time(a.get("first_seen")),
         _time(a.get("resolved_at")), a.get("notifications"), a.get("fired")] for a in review["alerts"]]
    ) if review["alerts"] else ["_no alerts_", ""]
    out += ["## Messages sent", ""]
    out += _table(["At", "Message", "Channel", "Outcome"], [
        [_time(m["at"]), m.get("step") or m.get("event"), m["channel"], m["outcome"]] for m in review["messages"]]
    ) if review["messages"] else ["_no messages_", ""]
    out += ["## Notes", ""]
    out += _bullets([f"{_time(n.get('at'))} {n.get('by')}: {n.get('text')}" for n in review["notes"]], "no notes")
    out += ["## What went well", ""] + _bullets(review["what_went_well"], "not written yet")
    out += ["## What to improve", ""] + _bullets(review["what_to_improve"], "not written yet")
    observed = review["observed"]
    if observed["went_well"] or observed["to_improve"]:
        out += ["Observed in the record (suggestions for the two lists above):", ""]
        out += _bullets([f"went well: {x}" for x in observed["went_well"]]
                        + [f"to improve: {x}" for x in observed["to_improve"]], "")
    out += ["## Action items", ""]
    out += _table(["Item", "Owner"], [[i.get("text"), i.get("owner") or "unassigned"]
                                      for i in review["action_items"]]) if review["action_items"] else [
        "_none yet_", ""]
    status = review["review_status"]
    if status.get("completed_by"):
        out += [f"Review completed by {status['completed_by']} at {_time(status.get('completed_at'))}.", ""]
    if review["to_do"]:
        out += ["## Still to do", ""] + _bullets(review["to_do"], "")
    sources = review["sources"]
    out += ["## About this review", "",
            f"Built {_time(review['generated_at'])} from {sources['history_events']} history events of "
            f"{sources['history_runs']} run(s) and the incident's summary ({sources['summary']}).", ""]
    if review["missing"]:
        out += ["Missing:", ""] + _bullets(review["missing"], "")
    return "\n".join(out).rstrip() + "\n"


def _root_cause(cause: dict[str, Any]) -> list[str]:
    lines = ["## Root cause", ""]
    found = []
    if cause.get("stated"):
        found.append(f"**Stated:** {cause['stated']}")
    if cause.get("stated_by_runbook"):
        found.append(f"The runbook's statement: {cause['stated_by_runbook']}")
    found += [f"Step `{o['step']}` output `{o['output']}`: {o['text']}" for o in cause.get("step_outputs") or []]
    failure = cause.get("failure")
    if failure:
        found.append(f"Failure: step `{failure.get('step')}`: {failure.get('type')}: {failure.get('message')}")
    return lines + _bullets(found, "not stated yet")
