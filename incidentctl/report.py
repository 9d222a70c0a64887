"""Incident figures over a period: MTTA / MTTM / MTTR p50 and p90, automated vs manual steps, approval wait.

From Temporal alone (docs/review.md): visibility lists the incidents started since the date (and their
IncidentStatus/Severity/Runbook/Service search attributes); each incident's summary (its workflow result once
closed, the `state` query while open) gives its milestones and steps. There is no second database to keep in
step. The figures themselves (`incident_figures`, `group_figures`) are pure and tested on fixtures.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from incidentctl.dsl.durations import parse_duration
from incidentctl.incident_times import approval_waits, durations, incident_times, parse_time
from incidentctl.review_timeline import AUTOMATED_KINDS
from incidentctl.summaries import RESULT, find_summary

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecution

GROUPINGS = ("severity", "runbook", "service")
# report name -> the incident duration it summarises
MEASURES = {"mtta": "time_to_acknowledge_s", "mttm": "time_to_mitigate_s", "mttr": "time_to_resolve_s"}
RAN = ("succeeded", "failed")
NO_GROUP = "(none)"
ALL = "all"
# Incidents whose summaries are fetched at once (each is one request; the server and the worker share the load).
CONCURRENCY = 8


class ReportError(ValueError):
    """A report request that cannot be answered, as one sentence."""


@dataclass
class IncidentFigures:
    incident_id: str
    severity: str | None
    runbook: str | None
    service: str | None
    status: str | None
    opened_at: str | None
    time_to_acknowledge_s: float | None = None
    time_to_mitigate_s: float | None = None
    time_to_resolve_s: float | None = None
    automated_steps: int = 0
    manual_steps: int = 0
    approval_waits_s: list[float] = field(default_factory=list)
    summary_source: str = RESULT  # where the summary came from; "" when there was none
    missing: list[str] = field(default_factory=list)


def manual_steps(summary: dict[str, Any]) -> int:
    """What people did: approval votes, acknowledging, notes, severity changes, resolving and closing by hand."""
    count = len(summary.get("approvals") or [])
    count += 1 if (summary.get("roles") or {}).get("acknowledged_by") else 0
    count += len(summary.get("notes") or []) + len(summary.get("severity_changes") or [])
    resolution = summary.get("resolution") or {}
    count += 1 if resolution.get("by") and resolution.get("by") not in ("alerts", "runbook") else 0
    count += 1 if summary.get("closed_by") else 0
    return count


def automated_steps(summary: dict[str, Any]) -> int:
    """Steps an action ran (not approvals, sleeps or the containers around other steps)."""
    return sum(1 for record in (summary.get("steps") or {}).values()
               if record.get("kind") in AUTOMATED_KINDS and record.get("status") in RAN)


def incident_figures(summary: dict[str, Any] | None, listed: dict[str, Any]) -> IncidentFigures:
    """One incident's figures from its summary; `listed` is what visibility says of it (the fallback for the
    group keys, and all there is when the summary is missing)."""
    figures = IncidentFigures(
        incident_id=listed["incident_id"],
        severity=(summary or {}).get("severity") or listed.get("severity"),
        runbook=(summary or {}).get("runbook") or listed.get("runbook"),
        service=(summary or {}).get("service") or listed.get("service") or None,
        status=(summary or {}).get("status") or listed.get("status"),
        opened_at=listed.get("started_at"),
    )
    if summary is None:
        figures.summary_source = ""
        return figures
    times, _ = incident_times(summary)
    figures.opened_at = times["opened_at"] or figures.opened_at
    spans = durations(times)
    for measure in MEASURES.values():
        setattr(figures, measure, spans[measure])
    figures.automated_steps = automated_steps(summary)
    figures.manual_steps = manual_steps(summary)
    figures.approval_waits_s = [w["wait_s"] for w in approval_waits(summary) if w["wait_s"] is not None]
    return figures


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between the closest ranks (numpy's default); None
    for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    value = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
    return round(value, 3)


def _group_row(name: str, members: list[IncidentFigures]) -> dict[str, Any]:
    row: dict[str, Any] = {"group": name, "incidents": len(members),
                           "with_summary": sum(1 for m in members if m.summary_source)}
    for short, measure in MEASURES.items():
        values = [v for v in (getattr(m, measure) for m in members) if v is not None]
        row[f"{short}_n"] = len(values)
        row[f"{short}_p50_s"] = percentile(values, 50)
        row[f"{short}_p90_s"] = percentile(values, 90)
    automated = sum(m.automated_steps for m in members)
    manual = sum(m.manual_steps for m in members)
    waits = [w for m in members for w in m.approval_waits_s]
    row.update(automated_steps=automated, manual_steps=manual,
               automated_share=round(automated / (automated + manual), 3) if automated + manual else None,
               approvals=len(waits), approval_wait_p50_s=percentile(waits, 50),
               approval_wait_p90_s=percentile(waits, 90))
    return row


def group_figures(incidents: list[IncidentFigures], by: str | None) -> list[dict[str, Any]]:
    """One row per group (sorted by name), or one row for all when `by` is None."""
    if by is None:
        return [_group_row(ALL, incidents)]
    if by not in GROUPINGS:
        raise ReportError(f"--by must be one of {', '.join(GROUPINGS)}, got {by!r}")
    groups: dict[str, list[IncidentFigures]] = {}
    for incident in incidents:
        groups.setdefault(getattr(incident, by) or NO_GROUP, []).append(incident)
    return [_group_row(name, groups[name]) for name in sorted(groups)]


def build_report(incidents: list[IncidentFigures], by: str | None, since: datetime, until: datetime
                 ) -> dict[str, Any]:
    return {
        "since": since.isoformat(), "until": until.isoformat(), "by": by, "incidents": len(incidents),
        "groups": group_figures(incidents, by),
        "total": _group_row(ALL, incidents),
        "without_summary": [{"incident_id": i.incident_id, "why": i.missing} for i in incidents
                            if not i.summary_source],
        "per_incident": [asdict(i) for i in incidents],
    }


def parse_since(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `2w` (before now) or an ISO date/time (UTC unless it says otherwise)."""
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    parsed = parse_time(text) or parse_time(text + "T00:00:00+00:00") or parse_time(text + "+00:00")
    if parsed is None:
        raise ReportError(f"--since takes a duration before now (30d, 12h, 2w) or a date (2024-05-01), got {text!r}")
    return parsed


def visibility_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _figures_of(client: Client, execution: WorkflowExecution, gate: asyncio.Semaphore) -> IncidentFigures:
    from temporalio.client import WorkflowExecutionStatus

    from workflows.model import RUNBOOK_ATTR, SERVICE_ATTR, SEVERITY_ATTR, STATUS_ATTR, TASK_QUEUE

    attrs = execution.typed_search_attributes
    listed = {"incident_id": execution.id, "severity": attrs.get(SEVERITY_ATTR), "runbook": attrs.get(RUNBOOK_ATTR),
              "service": attrs.get(SERVICE_ATTR), "status": attrs.get(STATUS_ATTR),
              "started_at": execution.start_time.isoformat() if execution.start_time else None}
    async with gate:
        result = None
        if execution.status == WorkflowExecutionStatus.COMPLETED:
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            result = await handle.result(follow_runs=False)
        running = execution.status == WorkflowExecutionStatus.RUNNING
        found = await find_summary(client, execution.id, run_id=execution.run_id,
                                   closed=None if running else str(execution.status.name).lower(),
                                   task_queue=execution.task_queue or TASK_QUEUE, result=result,
                                   latest_input=None)
    figures = incident_figures(found.summary, listed)
    if found.summary is not None:
        figures.summary_source = found.source
    figures.missing = found.missing
    return figures


async def collect_figures(client: Client, since: datetime, limit: int = 1000) -> list[IncidentFigures]:
    """Every incident opened since `since`, with its figures (visibility, then each one's summary)."""
    from temporalio.client import WorkflowExecutionStatus

    query = f"WorkflowType = 'IncidentWorkflow' AND StartTime >= '{visibility_time(since)}'"
    executions = [e async for e in client.list_workflows(query, limit=limit)
                  if e.status != WorkflowExecutionStatus.CONTINUED_AS_NEW]  # its newest run is listed too
    gate = asyncio.Semaphore(CONCURRENCY)
    incidents = await asyncio.gather(*(_figures_of(client, e, gate) for e in executions))
    # A run that continued-as-new into the window belongs to an incident opened before it.
    return [i for i in incidents if (parse_time(i.opened_at) or since) >= since]
