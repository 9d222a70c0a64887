"""Rendering for the CLI: aligned tables for people, JSON or YAML for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from workflows.messages import next_run_text


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def to_yaml(value: Any) -> str:
    import yaml

    # Through JSON first, so YAML shows exactly the values JSON does (datetimes and the like as strings).
    plain = json.loads(json.dumps(value, default=str))
    return yaml.safe_dump(plain, sort_keys=True, allow_unicode=True, default_flow_style=False).rstrip("\n")


def structured(value: Any, fmt: str) -> str:
    """`-o json` or `-o yaml`."""
    return to_yaml(value) if fmt == "yaml" else to_json(value)


def cell(value: Any, width: int = 60) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


# Columns people copy into the next command: never cut.
WHOLE_COLUMNS = ("incident_id", "incident", "id", "step")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[cell(row.get(c), 10_000 if c in WHOLE_COLUMNS else 60) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def incident_report(state: dict[str, Any]) -> str:
    """`incidentctl incident show`: the header, every step's result, what is waiting."""
    lines = [
        f"incident   {state['incident_id']}",
        f"status     {state['status']}  (workflow {state.get('workflow_status') or '?'})"
        + (f"   runbook outcome {state['outcome']}" if state.get("outcome") else ""),
        f"runbook    {state['runbook']} v{state.get('runbook_version')}  plan {str(state.get('plan_hash'))[:12]}",
        f"severity   {state['severity']}   service {state.get('service') or '-'}"
        + ("   DRY RUN" if state.get("dry_run") else ""),
        f"started    {state.get('started_at')}   finished {state.get('finished_at') or '-'}",
        f"params     {cell(state.get('params'), 100)}",
    ]
    roles = state.get("roles") or {}
    if roles:
        ack = (f"acked by {roles['acknowledged_by']} after {roles['time_to_ack_s']}s" if roles.get("acknowledged_by")
               else "not acknowledged")
        lines.append(f"roles      commander {roles.get('commander') or '-'}, assignee {roles.get('assignee') or '-'}; "
                     f"{ack}")
    times = {k.removesuffix("_at"): v for k, v in (state.get("times") or {}).items() if v}
    if times:
        lines.append("times      " + ", ".join(f"{k} {v}" for k, v in times.items()))
    resolution = state.get("resolution")
    if resolution:
        lines.append(f"resolved   by {resolution.get('by')}: {resolution.get('summary') or '-'}")
    for note in state.get("notes") or []:
        lines.append(f"note       {note['at']} {note['by']}: {note['text']}")
    for joined in state.get("joined") or []:
        names = ", ".join(joined.get("alertnames") or [])
        lines.append(f"joined     {names} (runbook {joined.get('runbook')} not run: "
                     f"same target {joined.get('target')})")
    for lease in state.get("leases") or []:
        lines.append(f"changed    {lease['target']} by step {lease['step']} ({lease['action']}): {lease['outcome']}")
    if state.get("current_steps"):
        lines.append(f"running    {', '.join(state['current_steps'])}")
    now = datetime.now(UTC)
    for progress in state.get("progress") or []:
        lines.append(f"progress   {progress_text(progress, now)}")
    for unknown in state.get("not_known") or []:
        lines.append(f"not known  {unknown}")
    if state.get("failure"):
        failure = state["failure"]
        lines.append(f"failure    step {failure.get('step')}: {failure.get('type')}: {failure.get('message')}")
    lines.append("")
    rows = []
    ordered = sorted(state.get("steps", {}).items(), key=lambda item: item[1].get("seq", 0))
    for key, record in ordered:
        detail = record.get("error") or record.get("output")
        rows.append({"step": key, "kind": record.get("kind"), "status": record.get("status"), "result": detail})
    lines.append(table(rows, ["step", "kind", "status", "result"]))
    for pending in state.get("pending_approvals") or []:
        who = ", ".join(pending["approvers"] + [f"group:{g}" for g in pending["groups"]]) or "anyone"
        lines.append("")
        lines.append(f"WAITING FOR APPROVAL  step {pending['step']}: {pending['message']}")
        lines.append(f"  needs {pending['required']} of: {who}; votes so far: {len(pending['votes'])}")
        if pending.get("will_run"):
            lines.append(f"  if approved, runs: {next_run_text(pending['will_run'])}")
        lines.append(f"  incidentctl incident approve {state['incident_id']} --step {pending['step']} --as USER")
    return "\n".join(lines)


def elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def parse_time(at: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(at) if at else None
    except ValueError:
        return None


def progress_text(progress: dict[str, Any], now: datetime) -> str:
    """A running step as Temporal holds it (incidentctl.step_progress.StepProgress, as a dict)."""
    started = parse_time(progress.get("started_at"))
    running_for = f" for {elapsed((now - started).total_seconds())}" if started else ""
    details = "; ".join(cell(d, 100) for d in progress["details"]) if progress.get("details") else \
        "no progress reported"
    retry = f" (last attempt failed: {progress['last_failure']})" if progress.get("last_failure") else ""
    return (f"step {progress['step']} ({progress['action']}) {progress['state']}{running_for}, "
            f"attempt {progress['attempt']}: {details}{retry}")


def timeline_report(events: Sequence[dict[str, Any]]) -> str:
    rows = [{"at": e["at"], "event": e["kind"], "step": e.get("step"), "detail": e.get("detail")} for e in events]
    return table(rows, ["at", "event", "step", "detail"])


def _span(seconds: float | None) -> str | None:
    from incidentctl.dsl.durations import format_duration

    if seconds is None:
        return None
    return f"{seconds:.1f}s" if seconds < 10 else format_duration(seconds)


def report_table(report: dict[str, Any]) -> str:
    """`incidentctl report`: one row per group and one for all, durations as p50 / p90."""
    rows = []
    for group in [*report["groups"], *([report["total"]] if report.get("by") else [])]:
        row = {"group": group["group"], "incidents": group["incidents"]}
        for short in ("mtta", "mttm", "mttr"):
            p50, p90 = _span(group[f"{short}_p50_s"]), _span(group[f"{short}_p90_s"])
            row[f"{short} p50/p90"] = f"{p50} / {p90}" if p50 else None
        share = group["automated_share"]
        row["steps auto/manual"] = (f"{group['automated_steps']}/{group['manual_steps']}"
                                    + (f" ({share * 100:.0f}% auto)" if share is not None else ""))
        wait50, wait90 = _span(group["approval_wait_p50_s"]), _span(group["approval_wait_p90_s"])
        row["approval wait p50/p90"] = f"{wait50} / {wait90} (n={group['approvals']})" if wait50 else None
        rows.append(row)
    header = f"incidents opened {report['since']} .. {report['until']}: {report['incidents']}"
    lines = [header, "", table(rows, list(rows[0]))]
    if report["without_summary"]:
        ids = ", ".join(item["incident_id"] for item in report["without_summary"])
        lines += ["", f"without a summary (no worker answered; counted, not measured): {ids}"]
    return "\n".join(lines)
