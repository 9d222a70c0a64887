"""Stakeholder messages built from an incident's state. Pure functions: the workflow calls them."""

from __future__ import annotations

import json
from typing import Any

from incidentctl.dsl import durations


def format_duration(seconds: float | None) -> str:
    return "-" if seconds is None else durations.format_duration(seconds)


def _compact(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline(state: dict[str, Any]) -> str:
    return f"{state['incident_id']} ({state['severity']}, runbook {state['runbook']}" + (
        f", service {state['service']})" if state.get("service") else ")")


def opened(state: dict[str, Any], impact: str) -> str:
    return (f"[INCIDENT OPENED] {headline(state)}\nImpact: {impact or 'being assessed'}\n"
            f"Commander: {state['roles'].get('commander') or '-'}  Assignee: {state['roles'].get('assignee') or '-'}")


def status_update(state: dict[str, Any], impact: str, next_in_s: float | None) -> str:
    running = ", ".join(state["current_steps"]) or "between steps"
    done = [k for k, r in state["steps"].items() if r.get("status") == "succeeded"]
    waiting = [p["step"] for p in state["pending_approvals"]]
    actions = f"running {running}" + (f"; waiting for approval of {', '.join(waiting)}" if waiting else "")
    return (f"[INCIDENT UPDATE] {headline(state)}\nStatus: {state['status']} ({len(done)} steps done)\n"
            f"Impact: {impact or 'being assessed'}\nCurrent actions: {actions}\n"
            f"Next update: in {format_duration(next_in_s)}")


def next_run_text(entry: dict[str, Any]) -> str:
    """An approval's next step as people read it: "<step> runs <action> with <params>"."""
    params = (f"params not known yet ({entry.get('unresolved')})" if entry.get("params") is None
              else _compact(entry["params"]))
    when = f" (if {entry['when']})" if entry.get("when") else ""
    return f"{entry['step']} runs {entry['action']} with {params}{when}"


def approval_request(state: dict[str, Any], pending: dict[str, Any], following: dict[str, Any] | None,
                     approve_url: str | None) -> str:
    """`following`: the pending approval's `will_run`, or the action step after it as it would run now."""
    diagnosis = {k: r.get("output") for k, r in state["steps"].items() if r.get("status") == "succeeded"}
    who = ", ".join(pending["approvers"] + [f"group:{g}" for g in pending["groups"]]) or "anyone"
    lines = [f"[APPROVAL NEEDED] {headline(state)}", f"Step {pending['step']}: {pending['message']}",
             f"Needs {pending['required']} approval(s) from {who}",
             f"Diagnosis so far: {_compact(diagnosis, 600)}"]
    if following:
        frozen = (pending.get("will_run") or {}).get("params") is not None
        exact = " (exactly these params: the approval fixes them)" if frozen else ""
        lines.append(f"If approved, next: {next_run_text(following)}{exact}")
    lines.append(f"Approve: incidentctl incident approve {state['incident_id']} --step {pending['step']} --as USER")
    if approve_url:
        lines.append(f"   or: POST {approve_url.rstrip('/')}/incidents/{state['incident_id']}/approvals")
    return "\n".join(lines)


def lifecycle(state: dict[str, Any], event: str, reason: str) -> str:
    """An open incident changed in a way people must hear: needs attention (paged), resolved."""
    roles = state["roles"]
    lines = [f"[INCIDENT {event.upper().replace('_', ' ')}] {headline(state)}", f"Why: {reason}"]
    if event == "needs_attention":
        who = roles.get("assignee") or roles.get("commander") or "the on-call"
        lines.append(f"Paging {who}: the automation stopped here and a person is needed "
                     f"(last runbook outcome: {state.get('outcome') or '-'}).")
    lines.append(f"Status: {state['status']}")
    return "\n".join(lines)


def closed(state: dict[str, Any], impact: str, root_cause: str, duration_s: float) -> str:
    kind = "RESOLVED" if state["status"] == "resolved" else state["status"].upper().replace("_", " ")
    failure = state.get("failure")
    cause = root_cause or (f"step {failure['step']} failed: {failure.get('message')}" if failure
                           else f"runbook {state['runbook']} completed")
    return (f"[INCIDENT {kind}] {headline(state)}\nDuration: {format_duration(duration_s)}\n"
            f"Impact: {impact or '-'}\nRoot cause: {cause}")
