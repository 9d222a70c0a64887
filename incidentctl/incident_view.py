"""What `incident show`, `timeline` and `watch` print, from wherever it can be had, saying where it came from.

A completed incident's state is its workflow result (the server keeps it). Otherwise the workflow is asked with a
query under a short deadline (the caller's); when no worker answers in time (or none polls its task queue), the
state is put together from the server's own records: the history (the state carried into the newest run by
continue-as-new, and the story of every activity, update and status change: incidentctl.review_timeline) and the
search attributes. Such a view says so in `note`, with the time of the newest history event it reflects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from incidentctl.client import ENDED, IncidentError, incident_state, query_timeline, worker_polling
from incidentctl.history import IncidentHistory, incident_history
from incidentctl.review_timeline import ACTIVITY_ENDS, plan_of, story_of
from incidentctl.step_progress import StepNames, running_steps
from incidentctl.summaries import summary_from_carried
from workflows.model import RUNBOOK_ATTR, SERVICE_ATTR, SEVERITY_ATTR, STATUS_ATTR

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecutionDescription

RESULT, QUERY, HISTORY = "workflow result", "state query", "history"
# A history step's outcome as a step record's status.
STEP_STATUS = {"scheduled": "running", "running": "running", **{v: v for v in ACTIVITY_ENDS.values()}}


@dataclass
class IncidentView:
    incident_id: str
    state: dict[str, Any] | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    source: str = QUERY  # RESULT, QUERY or HISTORY
    note: str | None = None  # set when the view is not the workflow's own answer
    running: bool = True  # the workflow is open


async def describe(client: Client, incident: str) -> WorkflowExecutionDescription:
    try:
        return await client.get_workflow_handle(incident).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise IncidentError(f"no incident {incident!r}", "not_found") from None
        raise IncidentError(f"cannot read incident {incident!r}: {exc.message}", "unreachable") from None


def _running(description: WorkflowExecutionDescription) -> bool:
    return description.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)


async def _asked(client: Client, description: WorkflowExecutionDescription, ask: Any) -> tuple[Any, str | None]:
    """The answer of `ask()` (a query), or None and why not when no worker answers in time."""
    if not await worker_polling(client, description.task_queue):
        return None, f"no worker polls task queue {description.task_queue!r}"
    try:
        return await ask(), None
    except IncidentError as exc:
        if exc.kind != "unreachable":
            raise
        return None, "no worker answered"


async def read_state(client: Client, incident: str, query_timeout: timedelta) -> IncidentView:
    description = await describe(client, incident)
    view = IncidentView(incident_id=incident, running=_running(description))
    if description.status == WorkflowExecutionStatus.COMPLETED:
        result = await client.get_workflow_handle(incident).result()
        if isinstance(result, dict):
            view.state, view.source = result, RESULT
            view.state["workflow_status"] = description.status.name
            return view
    state, why = await _asked(client, description, lambda: incident_state(client, incident, timeout=query_timeout))
    if state is not None:
        view.state = state
    else:
        history = await _history(client, incident)
        view.state, view.source = state_from_history(history, description), HISTORY
        view.note = f"{why}; from history as of {_as_of(history)}"
    view.state["workflow_status"] = "RUNNING" if view.running else description.status.name
    if not view.running and description.status in ENDED:
        view.state["status"] = ENDED[description.status]
    if view.running:
        # What a long step has done so far is the server's (its heartbeats), whoever answered the rest.
        try:
            progress = await running_steps(client, description, StepNames())
        except RPCError:
            progress = []
        view.state["progress"] = [dataclasses.asdict(p) for p in progress]
    return view


async def read_timeline(client: Client, incident: str, query_timeout: timedelta) -> IncidentView:
    description = await describe(client, incident)
    view = IncidentView(incident_id=incident, running=_running(description))
    events, why = await _asked(client, description, lambda: query_timeline(client, incident, timeout=query_timeout))
    if events is not None:
        view.timeline = events
        return view
    history = await _history(client, incident)
    view.timeline, view.source = timeline_from_history(history), HISTORY
    view.note = f"{why}; from history as of {_as_of(history)}"
    return view


async def _history(client: Client, incident: str) -> IncidentHistory:
    try:
        return await incident_history(client, incident)
    except LookupError as exc:
        raise IncidentError(str(exc), "not_found") from None


def _as_of(history: IncidentHistory) -> str:
    return history.events[-1].at if history.events else "its start"


def timeline_from_history(history: IncidentHistory) -> list[dict[str, Any]]:
    """The history's story in the shape of the workflow's own timeline entries (at, kind, step, detail)."""
    entries = []
    for entry in story_of(history).timeline:
        detail = {k: v for k, v in entry.items() if k not in ("at", "kind", "step")}
        shaped: dict[str, Any] = {"at": entry["at"], "kind": entry["kind"]}
        if entry.get("step"):
            shaped["step"] = entry["step"]
        if detail:
            shaped["detail"] = detail
        entries.append(shaped)
    return entries


def state_from_history(history: IncidentHistory, description: WorkflowExecutionDescription) -> dict[str, Any]:
    """The summary fields the history and the search attributes can tell, in the `state` query's shape."""
    story = story_of(history)
    inp = history.latest_input
    state = summary_from_carried(inp) or _identity(history)
    attributes = description.typed_search_attributes
    known = {"status": attributes.get(STATUS_ATTR), "severity": attributes.get(SEVERITY_ATTR),
             "runbook": state.get("runbook") or attributes.get(RUNBOOK_ATTR),
             "service": state.get("service") or attributes.get(SERVICE_ATTR)}
    state.update({k: v for k, v in known.items() if v})
    steps = dict(state.get("steps") or {})
    seq = len(steps)
    results = _action_results(history)
    for key, step in story.steps.items():
        if key in steps and steps[key].get("status") not in ("running", None):
            continue  # the carried record is the workflow's own (with the step's outputs)
        seq += 1
        record = {"kind": "action", "action": step["action"], "status": STEP_STATUS.get(step["outcome"], "running"),
                  "started_at": step["started_at"], "finished_at": step["finished_at"], "attempts": step["attempts"],
                  "seq": seq, "from_history": True}
        if step.get("error"):
            record["error"] = step["error"]
        elif key in results:
            record["output"] = results[key]  # the action's result (the runbook's `outputs:` are not applied)
        steps[key] = record
    state["steps"] = steps
    state["current_steps"] = [key for key, record in steps.items() if record.get("status") == "running"]
    # The workflow keeps pending approvals in memory only: the history cannot say which are waiting.
    state["pending_approvals"] = []
    state["not_known"] = ["which approvals wait (ask again when a worker runs)",
                          "step outputs as the runbook names them: the actions' own results are shown"]
    if description.close_time:
        state["finished_at"] = state.get("finished_at") or description.close_time.isoformat()
    return state


def _action_results(history: IncidentHistory) -> dict[str, Any]:
    """Step key -> the result of its last completed action, from the scheduled and completed activity events."""
    steps: dict[tuple[str, int], str] = {}
    results: dict[str, Any] = {}
    for event in history.events:
        if event.type == "ACTIVITY_TASK_SCHEDULED":
            inp = event.data.get("input")
            if isinstance(inp, dict) and isinstance(inp.get("step_id"), str):
                steps[(event.run_id, event.event_id)] = inp["step_id"]
        elif event.type == "ACTIVITY_TASK_COMPLETED":
            key = steps.get((event.run_id, event.data.get("scheduled_event_id", -1)))
            if key is not None:
                results[key] = event.data.get("result")
    return results


def _identity(history: IncidentHistory) -> dict[str, Any]:
    inp = history.first_input
    plan = plan_of(history)
    starts = history.starts()
    return {"incident_id": history.incident_id, "runbook": plan.runbook.name if plan else None,
            "runbook_version": plan.runbook.version if plan else None, "plan_hash": plan.hash if plan else None,
            "severity": inp.get("severity"), "service": inp.get("service"), "params": inp.get("params"),
            "dry_run": inp.get("dry_run"), "started_at": starts[0].at if starts else None, "finished_at": None,
            "steps": {}, "runs": len(history.runs)}
