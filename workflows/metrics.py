"""Our own metrics from incident workflows: incidents opened and closed, steps started and finished, step
failures by error type, approvals requested and finished.

They go through `workflow.metric_meter()`, so they land in the worker's Temporal SDK Prometheus endpoint (one
scrape target) and are not emitted while a workflow replays: each happening is counted once, by the worker that
first ran it. Counting adds no command to the history, so no patch is needed. Labels stay low-cardinality:
runbook, severity, step kind, action, outcome, error type; never an incident id or a step key (which carries
foreach indexes). With no metrics configured on the worker's runtime the meter is a no-op.
"""

from __future__ import annotations

from temporalio import workflow

INCIDENTS_OPENED = "incidentctl_incidents_opened_total"
INCIDENTS_CLOSED = "incidentctl_incidents_closed_total"
STEPS_STARTED = "incidentctl_steps_started_total"
STEPS_FINISHED = "incidentctl_steps_finished_total"
STEP_FAILURES = "incidentctl_step_failures_total"
APPROVALS_REQUESTED = "incidentctl_approvals_requested_total"
APPROVALS_FINISHED = "incidentctl_approvals_finished_total"

_HELP = {
    INCIDENTS_OPENED: "Incidents opened, by runbook and severity.",
    INCIDENTS_CLOSED: "Incidents closed, by runbook and severity at close.",
    STEPS_STARTED: "Runbook steps started, by step kind and action.",
    STEPS_FINISHED: "Runbook steps finished, by step kind, action and outcome (succeeded, failed, skipped, "
                    "superseded, cancelled, interrupted).",
    STEP_FAILURES: "Runbook steps failed, by step kind, action and error type.",
    APPROVALS_REQUESTED: "Approvals requested, by runbook. Waiting now: requested minus finished.",
    APPROVALS_FINISHED: "Approvals finished, by runbook and outcome (approved, rejected, timed_out, superseded).",
}


def count(name: str, **labels: str) -> None:
    """Add one to `name` with `labels`. Outside a workflow's event loop (a coroutine closed while an evicted
    workflow is torn down) there is nothing to count: the work goes on when the workflow is replayed."""
    if not workflow.in_workflow():
        return
    workflow.metric_meter().create_counter(name, _HELP[name]).add(1, labels)


def step_labels(kind: str, action: str | None) -> dict[str, str]:
    return {"kind": kind, "action": action or ""}
