"""An incident's durable record as Temporal keeps it: the event history of every run of its workflow id, decoded.

The review and the report read what happened from here rather than from the workflow's own account, so they
work with no worker running (history is the server's) and say exactly what the server recorded. Only the events
that tell the incident's story are kept (activities, updates, signals, search-attribute upserts, the run's
start and end); workflow tasks and timers are the engine's bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from temporalio.api.failure.v1 import Failure
    from temporalio.api.history.v1 import HistoryEvent
    from temporalio.client import Client, WorkflowHistory
    from temporalio.converter import DataConverter

# A chain of continue-as-new runs longer than this is a loop somewhere, not an incident.
MAX_RUNS = 1000

# Run-ending event types, as `closed` names them.
CLOSINGS = {"WORKFLOW_EXECUTION_COMPLETED": "completed", "WORKFLOW_EXECUTION_FAILED": "failed",
            "WORKFLOW_EXECUTION_CANCELED": "cancelled", "WORKFLOW_EXECUTION_TERMINATED": "terminated",
            "WORKFLOW_EXECUTION_TIMED_OUT": "timed_out", "WORKFLOW_EXECUTION_CONTINUED_AS_NEW": "continued_as_new"}


@dataclass
class RecordedEvent:
    """One history event: `type` is the event type without its `EVENT_TYPE_` prefix; `data` its decoded fields."""

    run_id: str
    event_id: int
    at: str  # ISO-8601 UTC, as the server stamped it
    type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class IncidentHistory:
    incident_id: str
    runs: list[str]  # run ids, the first run first
    events: list[RecordedEvent]
    task_queue: str = ""
    closed: str | None = None  # how the newest run ended (a CLOSINGS value), None while it runs

    def starts(self) -> list[RecordedEvent]:
        return [e for e in self.events if e.type == "WORKFLOW_EXECUTION_STARTED"]

    @property
    def first_input(self) -> dict[str, Any]:
        """The incident's input as it was started (plan, params, alert, severity, started_by, ...)."""
        starts = self.starts()
        return starts[0].data.get("input") or {} if starts else {}

    @property
    def latest_input(self) -> dict[str, Any]:
        """The newest run's input: after continue-as-new it carries the state as of that moment."""
        starts = self.starts()
        return starts[-1].data.get("input") or {} if starts else {}

    @property
    def result(self) -> dict[str, Any] | None:
        """The workflow result (the incident's summary) once the newest run completed."""
        done = [e for e in self.events if e.type == "WORKFLOW_EXECUTION_COMPLETED"]
        value = done[-1].data.get("result") if done else None
        return value if isinstance(value, dict) else None


def _iso(event: HistoryEvent) -> str:
    return event.event_time.ToDatetime(tzinfo=UTC).isoformat()


def _failure(failure: Failure) -> dict[str, Any]:
    """The innermost failure that says something (an activity failure wraps the application's own)."""
    while failure.HasField("cause") and not failure.HasField("application_failure_info"):
        failure = failure.cause
    if failure.HasField("application_failure_info"):
        return {"type": failure.application_failure_info.type or "ApplicationError", "message": failure.message}
    if failure.HasField("timeout_failure_info"):
        from temporalio.api.enums.v1 import TimeoutType

        kind = TimeoutType.Name(failure.timeout_failure_info.timeout_type).removeprefix("TIMEOUT_TYPE_").lower()
        return {"type": "Timeout", "message": failure.message or f"timed out ({kind})"}
    return {"type": "Failure", "message": failure.message}


async def _values(converter: DataConverter, payloads: Any) -> list[Any]:
    if not payloads.payloads:
        return []
    return await converter.decode(list(payloads.payloads))


async def _first(converter: DataConverter, payloads: Any) -> Any:
    values = await _values(converter, payloads)
    return values[0] if values else None


async def _search_attributes(converter: DataConverter, attributes: Any) -> dict[str, Any]:
    fields = dict(attributes.indexed_fields)
    if not fields:
        return {}
    values = await converter.decode(list(fields.values()))
    return dict(zip(fields, values, strict=True))


async def _decode(event: HistoryEvent, run_id: str, converter: DataConverter) -> RecordedEvent | None:
    from temporalio.api.enums.v1 import EventType, RetryState

    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    data: dict[str, Any]
    if kind == "WORKFLOW_EXECUTION_STARTED":
        a = event.workflow_execution_started_event_attributes
        data = {"input": await _first(converter, a.input), "task_queue": a.task_queue.name,
                "continued_from": a.continued_execution_run_id or None, "identity": a.identity,
                "search_attributes": await _search_attributes(converter, a.search_attributes)}
    elif kind == "ACTIVITY_TASK_SCHEDULED":
        a = event.activity_task_scheduled_event_attributes
        data = {"activity_id": a.activity_id, "activity_type": a.activity_type.name,
                "input": await _first(converter, a.input)}
    elif kind == "ACTIVITY_TASK_STARTED":
        a = event.activity_task_started_event_attributes
        data = {"scheduled_event_id": a.scheduled_event_id, "attempt": a.attempt, "identity": a.identity}
        if a.HasField("last_failure"):
            data["last_failure"] = _failure(a.last_failure)
    elif kind == "ACTIVITY_TASK_COMPLETED":
        a = event.activity_task_completed_event_attributes
        data = {"scheduled_event_id": a.scheduled_event_id, "result": await _first(converter, a.result)}
    elif kind in ("ACTIVITY_TASK_FAILED", "ACTIVITY_TASK_TIMED_OUT"):
        a = (event.activity_task_failed_event_attributes if kind == "ACTIVITY_TASK_FAILED"
             else event.activity_task_timed_out_event_attributes)
        data = {"scheduled_event_id": a.scheduled_event_id, "error": _failure(a.failure),
                "retry_state": RetryState.Name(a.retry_state).removeprefix("RETRY_STATE_").lower()}
    elif kind == "ACTIVITY_TASK_CANCELED":
        data = {"scheduled_event_id": event.activity_task_canceled_event_attributes.scheduled_event_id}
    elif kind == "WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
        a = event.workflow_execution_update_accepted_event_attributes
        request = a.accepted_request
        data = {"update_id": request.meta.update_id, "name": request.input.name,
                "args": await _values(converter, request.input.args), "identity": request.meta.identity}
    elif kind == "WORKFLOW_EXECUTION_UPDATE_COMPLETED":
        a = event.workflow_execution_update_completed_event_attributes
        data = {"update_id": a.meta.update_id, "accepted_event_id": a.accepted_event_id}
        if a.outcome.HasField("failure"):
            data["error"] = _failure(a.outcome.failure)
        else:
            data["result"] = await _first(converter, a.outcome.success)
    elif kind == "WORKFLOW_EXECUTION_SIGNALED":
        a = event.workflow_execution_signaled_event_attributes
        data = {"name": a.signal_name, "args": await _values(converter, a.input), "identity": a.identity}
    elif kind == "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES":
        attributes = event.upsert_workflow_search_attributes_event_attributes.search_attributes
        data = {"search_attributes": await _search_attributes(converter, attributes)}
    elif kind == "WORKFLOW_EXECUTION_CANCEL_REQUESTED":
        a = event.workflow_execution_cancel_requested_event_attributes
        data = {"identity": a.identity, "cause": a.cause}
    elif kind == "WORKFLOW_EXECUTION_CONTINUED_AS_NEW":
        data = {"new_run_id": event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id}
    elif kind == "WORKFLOW_EXECUTION_COMPLETED":
        data = {"result": await _first(converter, event.workflow_execution_completed_event_attributes.result)}
    elif kind == "WORKFLOW_EXECUTION_FAILED":
        data = {"error": _failure(event.workflow_execution_failed_event_attributes.failure)}
    elif kind == "WORKFLOW_EXECUTION_TERMINATED":
        a = event.workflow_execution_terminated_event_attributes
        data = {"reason": a.reason, "identity": a.identity}
    elif kind in ("WORKFLOW_EXECUTION_CANCELED", "WORKFLOW_EXECUTION_TIMED_OUT"):
        data = {}
    else:
        return None
    return RecordedEvent(run_id=run_id, event_id=event.event_id, at=_iso(event), type=kind, data=data)


async def decode_run(history: WorkflowHistory, converter: DataConverter | None = None) -> list[RecordedEvent]:
    """The story events of one run's history (from the server, or from JSON as the UI exports it)."""
    from temporalio.converter import DataConverter

    converter = converter or DataConverter.default
    run_id = history.run_id if history.events else ""
    decoded = [await _decode(event, run_id, converter) for event in history.events]
    return [event for event in decoded if event is not None]


async def incident_history(client: Client, incident_id: str) -> IncidentHistory:
    """Every run of the incident's newest execution chain, oldest first, followed back through continue-as-new.

    Raises LookupError when the server has no workflow with that id.
    """
    from temporalio.service import RPCError, RPCStatusCode

    runs: list[list[RecordedEvent]] = []
    run_id: str | None = None
    while len(runs) < MAX_RUNS:
        handle = client.get_workflow_handle(incident_id, run_id=run_id)
        try:
            history = await handle.fetch_history()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND and not runs:
                raise LookupError(f"no incident {incident_id!r}") from None
            raise
        events = await decode_run(history, client.data_converter)
        runs.insert(0, events)
        start = events[0] if events and events[0].type == "WORKFLOW_EXECUTION_STARTED" else None
        run_id = start.data.get("continued_from") if start else None
        if not run_id:
            break
    flat = [event for run in runs for event in run]
    newest = runs[-1] if runs else []
    closed = next((CLOSINGS[e.type] for e in reversed(newest) if e.type in CLOSINGS), None)
    starts = [e for e in flat if e.type == "WORKFLOW_EXECUTION_STARTED"]
    return IncidentHistory(incident_id=incident_id, runs=[run[0].run_id for run in runs if run], events=flat,
                           task_queue=starts[-1].data.get("task_queue", "") if starts else "", closed=closed)
