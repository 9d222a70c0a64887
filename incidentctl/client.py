"""Incident operations through the Temporal client: start, show, list, cancel, approve.

The CLI, the demo and the tests all go through here, so there is one way to start an incident.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.incident_history import visibility_quote
from incidentctl.dsl import expressions
from incidentctl.dsl.plan import Plan
from incidentctl.params import ParameterError, resolve_params
from incidentctl.people import PeopleConfigError, load_groups
from incidentctl.plan_signing import sign_plan
from incidentctl.ui_texts import static_details, static_summary
from workflows.incident import IncidentWorkflow
from workflows.model import (
    OPEN,
    RUNBOOK_ATTR,
    SERVICE_ATTR,
    SEVERITY_ATTR,
    STATUS_ATTR,
    TASK_QUEUE,
    Acknowledgement,
    ApprovalDecision,
    ApprovalReceipt,
    Assignment,
    Closure,
    CommandReceipt,
    IncidentInput,
    Note,
    Reopening,
    Resolution,
    ReviewEdit,
    RunbookRequest,
    SeverityChange,
    StartClaim,
    incident_search_attributes,
    wire,
)

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")


class IncidentError(Exception):
    """A refusal to show the user as one sentence (unknown incident, refused approval, ...).

    `kind` says what went wrong for callers that answer in codes (the receiver's HTTP API): "invalid",
    "not_found", "refused" (the incident said no, or is closed) or "unreachable" (Temporal or no worker).
    """

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class StartedIncident:
    incident_id: str
    run_id: str | None
    created: bool  # False when an incident with this key was already running


def params_key(runbook: str, params: dict[str, Any]) -> str:
    """A stable key when the caller gives none: the same runbook and parameters are the same incident."""
    canonical = json.dumps({"runbook": runbook, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def incident_id(runbook: str, key: str) -> str:
    safe_key = re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-")[:120] or "default"
    return f"incident-{runbook}-{safe_key}"


async def start_incident(
    client: Client,
    plan: Plan,
    *,
    params: dict[str, Any] | None = None,
    alert: dict[str, Any] | None = None,
    key: str | None = None,
    severity: str | None = None,
    started_by: str = "",
    dry_run: bool = False,
    groups: dict[str, list[str]] | None = None,
    task_queue: str = TASK_QUEUE,
    history_event_limit: int = 8000,
    eager_start: bool = True,
    prove_start: Callable[[str, Any], str] | None = None,
) -> StartedIncident:
    """Start an incident from a compiled plan; a second start with the same key reports the running one.

    With `eager_start`, a worker for the task queue in this process (the demo, `incidentctl dev`) gets the
    incident's first workflow task in the start's answer instead of polling for it: one round trip less.
    `prove_start(incident id, StartClaim)`: the start's identity proof, where the caller verified `started_by`
    (workers that require verified people refuse an unproven start).
    """
    runbook = plan.runbook
    resolved = resolve_params(plan, params or {}, alert)
    severity = (severity or runbook.severity).upper()
    if severity not in SEVERITIES:
        raise IncidentError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    context = {"params": resolved, "alert": alert or {}}
    service = str(expressions.render(runbook.service or "", context) or "")
    workflow_id = incident_id(runbook.name, key or params_key(runbook.name, resolved))
    if groups is None:
        try:
            groups = load_groups()
        except PeopleConfigError as exc:
            raise IncidentError(str(exc)) from None
    inp = IncidentInput(
        incident_id=workflow_id,
        plan=plan.wire_json,
        params=resolved,
        alert=alert,
        severity=severity,
        service=service,
        started_by=started_by,
        dry_run=dry_run,
        groups=groups or {},
        history_event_limit=history_event_limit,
        plan_signature=sign_plan(plan.hash),
    )
    if prove_start is not None:
        inp.start_proof = prove_start(workflow_id, StartClaim(started_by=started_by, plan_hash=plan.hash))
    try:
        handle = await client.start_workflow(
            IncidentWorkflow.run,
            wire(inp),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=incident_search_attributes(OPEN, severity, runbook.name, service),
            static_summary=static_summary(plan, inp), static_details=static_details(plan, inp),
            request_eager_start=eager_start,
        )
    except WorkflowAlreadyStartedError:
        return StartedIncident(incident_id=workflow_id, run_id=None, created=False)
    return StartedIncident(incident_id=workflow_id, run_id=handle.first_execution_run_id, created=True)


def _handle(client: Client, incident: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(incident)


async def show_incident(client: Client, incident: str) -> dict[str, Any]:
    handle = _handle(client, incident)
    try:
        description = await handle.describe()
    except RPCError as exc:
        raise IncidentError(f"no incident {incident!r}: {exc.message}", "not_found") from None
    state: dict[str, Any] = await _query(handle, IncidentWorkflow.state, incident)
    state["workflow_status"] = description.status.name if description.status else None
    if description.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
        state["workflow_status"] = "RUNNING"
    return state


QUERY_TIMEOUT = timedelta(seconds=10)


# A query nobody answers ends at its deadline, which the server shares (the `grpc-timeout` header carries ours),
# in one of three ways: our timer (CANCELLED "Timeout expired"), the server's handler (DEADLINE_EXCEEDED), or
# the server's transport resetting the stream, RST_STREAM(CANCEL), which the Rust client reports as CANCELLED
# "h2 protocol error: http2 error". Which one wins is a race; on a loaded machine the reset often does. All
# three, and a connection that failed, mean "nobody answered in time" (docs/design.md, "Queries nobody
# answers"; tests/test_query_resets.py makes the reset certain). The core SDK asks again after a reset with
# fresh deadlines, for about 9 s whatever `rpc_timeout` says (measured), so the deadline is kept here.
_NOBODY_ANSWERED = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE,
                    RPCStatusCode.INTERNAL, RPCStatusCode.UNKNOWN)


def _no_worker(incident: str) -> IncidentError:
    return IncidentError(f"incident {incident!r} did not answer: no worker is polling its task queue "
                         "(start one with `python worker.py` or `incidentctl dev`)", "unreachable")


async def _ask(handle: WorkflowHandle[Any, Any], query: Any, timeout: timedelta) -> Any:
    try:
        # Not asyncio.wait_for: on Python 3.11 it drops a cancellation (Ctrl-C) that arrives with the answer.
        async with asyncio.timeout(timeout.total_seconds() + 1):
            return await handle.query(query, rpc_timeout=timeout)
    except TimeoutError:
        raise RPCError("no answer before the query's deadline", RPCStatusCode.CANCELLED, b"") from None


async def _query(handle: WorkflowHandle[Any, Any], query: Any, incident: str, timeout: timedelta = QUERY_TIMEOUT
                 ) -> Any:
    try:
        try:
            return await _ask(handle, query, timeout)
        except RPCError as exc:
            if exc.status not in _NOBODY_ANSWERED or exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
                raise
            # A read, so asking once more is safe: a worker slowed by a loaded machine may answer this time.
            return await _ask(handle, query, timeout)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise IncidentError(f"no incident {incident!r}", "not_found") from None
        if exc.status in _NOBODY_ANSWERED:
            raise _no_worker(incident) from None
        raise IncidentError(f"cannot query incident {incident!r}: {exc.message}", "unreachable") from None
    except WorkflowQueryFailedError as exc:
        # A worker answered with an error: this incident's problem (it may no longer replay), not the caller's.
        raise IncidentError(f"incident {incident!r} could not answer: {exc.message} (its worker's log says more)",
                            "unreachable") from None


async def incident_state(client: Client, incident: str, run_id: str | None = None,
                         timeout: timedelta = QUERY_TIMEOUT) -> dict[str, Any]:
    """The `state` query of one run of an incident (its newest without `run_id`); a worker must answer it."""
    return await _query(client.get_workflow_handle(incident, run_id=run_id), IncidentWorkflow.state, incident,
                        timeout)


async def worker_polling(client: Client, task_queue: str) -> bool:
    """Whether any worker has polled the task queue lately (the server remembers pollers for a few minutes), so
    a query can be answered; False saves waiting for a query timeout that is sure to come."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    try:
        described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    except RPCError:
        return True  # cannot tell: let the query find out
    return bool(described.pollers)


async def incident_timeline(client: Client, incident: str) -> list[dict[str, Any]]:
    return await _query(_handle(client, incident), IncidentWorkflow.timeline, incident)


async def query_timeline(client: Client, incident: str, timeout: timedelta = QUERY_TIMEOUT) -> list[dict[str, Any]]:
    """The workflow's own timeline, asked with a deadline of `timeout`."""
    return await _query(_handle(client, incident), IncidentWorkflow.timeline, incident, timeout)


# How a closed workflow that did not complete ended, as `incident list` and `show` say it: the status search
# attribute keeps whatever the workflow last set (`running` for a terminated one, say), so it is not the answer.
ENDED = {WorkflowExecutionStatus.TERMINATED: "terminated", WorkflowExecutionStatus.CANCELED: "cancelled",
         WorkflowExecutionStatus.TIMED_OUT: "timed_out", WorkflowExecutionStatus.FAILED: "failed"}
# The visibility name of each, for `--status terminated` and the like.
_ENDED_VISIBILITY = {"terminated": "Terminated", "cancelled": "Canceled", "timed_out": "TimedOut", "failed": "Failed"}


def listed_status(execution_status: WorkflowExecutionStatus | None, attribute: str | None) -> str | None:
    """The incident status to show for an execution: one ended from outside never shows as open."""
    return ENDED.get(execution_status, attribute) if execution_status is not None else attribute


def list_query(status: str | None = None, severity: str | None = None, runbook: str | None = None,
               service: str | None = None) -> str:
    clauses = ["WorkflowType = 'IncidentWorkflow'"]
    if status in _ENDED_VISIBILITY:
        # Ended from outside, the execution status says so; incidents of old code also set the attribute.
        clauses.append(f"(IncidentStatus = {visibility_quote(status)} OR "
                       f"ExecutionStatus = '{_ENDED_VISIBILITY[status]}')")
        status = None
    for attr, value in (("IncidentStatus", status), ("IncidentSeverity", severity),
                        ("IncidentRunbook", runbook), ("IncidentService", service)):
        if value:
            clauses.append(f"{attr} = {visibility_quote(value)}")
    return " AND ".join(clauses)


async def list_incidents(client: Client, *, status: str | None = None, severity: str | None = None,
                         runbook: str | None = None, service: str | None = None,
                         limit: int = 100) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    query = list_query(status, severity, runbook, service)
    async for execution in client.list_workflows(query, limit=limit):
        attrs = execution.typed_search_attributes
        if execution.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
            continue  # the newest run of the same incident is listed too
        shown = listed_status(execution.status, attrs.get(STATUS_ATTR))
        if status and shown != status:
            continue  # listed by a status attribute its workflow no longer has (it was terminated, say)
        rows.append({
            "incident_id": execution.id,
            "status": shown,
            "severity": attrs.get(SEVERITY_ATTR),
            "runbook": attrs.get(RUNBOOK_ATTR),
            "service": attrs.get(SERVICE_ATTR) or "",
            "started_at": execution.start_time.isoformat() if execution.start_time else None,
            "closed_at": execution.close_time.isoformat() if execution.close_time else None,
            "workflow_status": execution.status.name if execution.status else None,
        })
    return rows


async def cancel_incident(client: Client, incident: str) -> None:
    try:
        await _handle(client, incident).cancel()
    except RPCError as exc:
        raise IncidentError(f"cannot cancel {incident!r}: {exc.message}",
                            "not_found" if exc.status == RPCStatusCode.NOT_FOUND else "unreachable") from None


async def decide(client: Client, incident: str, decision: ApprovalDecision) -> ApprovalReceipt:
    """Approve or reject through the validated update: a refusal comes back as a sentence."""
    return await _update(client, incident, IncidentWorkflow.decide_approval, decision, "approval refused")


async def pending_approvals(client: Client, limit: int = 200, unanswered: list[str] | None = None
                            ) -> list[dict[str, Any]]:
    """Every approval waiting across incidents, oldest request first, with the time left where there is a deadline.
    Incidents listed as waiting that could not be asked (no worker) are appended to `unanswered`."""
    rows: list[dict[str, Any]] = []
    async for execution in client.list_workflows(list_query(status="waiting_approval"), limit=limit):
        if execution.status != WorkflowExecutionStatus.RUNNING:
            continue  # ended from outside while it waited (terminated, timed out): nothing waits any more
        try:
            state = await show_incident(client, execution.id)
        except IncidentError as exc:
            if exc.kind == "unreachable" and unanswered is not None:
                unanswered.append(execution.id)
            continue  # closed since the listing: it is not waiting any more
        for pending in state["pending_approvals"]:
            rows.append({"incident_id": execution.id, "runbook": state["runbook"], "severity": state["severity"],
                         **pending})
    rows.sort(key=lambda row: row["requested_at"])
    now = datetime.now(UTC)
    for row in rows:
        deadline = row.get("deadline")
        row["time_left_s"] = round((datetime.fromisoformat(deadline) - now).total_seconds()) if deadline else None
    return rows


# Statuses in which a runbook of the incident is running (the lifecycle room's RUNBOOK_RUNNING).
RUNBOOK_RUNNING = ("mitigating", "waiting_approval", "rolling_back")


async def wait_for_runbook(client: Client, incident: str, timeout: float = 600.0) -> dict[str, Any]:
    """The incident's summary once its runbook has finished (the incident itself stays open).

    The workflow answers a `runbook_outcome` update when that happens; an incident that ended (closed,
    cancelled, or started before the lifecycle) answers with its final summary.
    """
    handle = _handle(client, incident)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise IncidentError(f"incident {incident!r}: its runbook did not finish within {timeout:g}s", "unreachable")
        try:
            async with asyncio.timeout(left):
                return await handle.execute_update(IncidentWorkflow.runbook_outcome)
        except TimeoutError:
            continue  # the deadline check above says so
        except WorkflowUpdateFailedError as exc:
            if getattr(exc.cause, "type", None) != "ContinuedAsNew":
                raise IncidentError(f"incident {incident!r}: {getattr(exc.cause, 'message', exc)}", "refused") from None
        except RPCError as exc:
            if "already completed" in exc.message:
                return await _final_summary(client, incident)
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise IncidentError(f"no incident {incident!r}", "not_found") from None
            raise IncidentError(f"cannot reach incident {incident!r}: {exc.message}", "unreachable") from None


async def _final_summary(client: Client, incident: str) -> dict[str, Any]:
    """An ended incident's summary: its result, or (cancelled, failed) what it answers to the state query."""
    try:
        result = await _handle(client, incident).result()
    except WorkflowFailureError:
        return await show_incident(client, incident)
    return result if isinstance(result, dict) else await show_incident(client, incident)


async def add_note(client: Client, incident: str, note: Note) -> CommandReceipt:
    return await _update(client, incident, IncidentWorkflow.note, note, "note refused")


async def change_severity(client: Client, incident: str, change: SeverityChange) -> CommandReceipt:
    return await _update(client, incident, IncidentWorkflow.change_severity, change, "severity change refused")


async def resolve_incident(client: Client, incident: str, resolution: Resolution) -> CommandReceipt:
    return await _update(client, incident, IncidentWorkflow.resolve, resolution, "resolve refused")


async def reopen_incident(client: Client, incident: str, reopening: Reopening) -> CommandReceipt:
    return await _update(client, incident, IncidentWorkflow.reopen, reopening, "reopen refused")


async def close_incident(client: Client, incident: str, closure: Closure) -> CommandReceipt:
    return await _update(client, incident, IncidentWorkflow.close, closure, "close refused")


async def run_runbook(client: Client, incident: str, plan: Plan, params: dict[str, Any] | None, by: str,
                      prove: Callable[[Any], str] | None = None) -> CommandReceipt:
    """Run another runbook inside the open incident; its parameters are resolved here, as at start. `prove`
    makes the request's identity proof (incidentctl/identity.py), where the caller verified `by`."""
    try:
        resolved = resolve_params(plan, params or {}, None)
    except ParameterError as exc:
        raise IncidentError("; ".join(exc.problems), "invalid") from None
    request = RunbookRequest(by=by, plan=plan.wire_json, params=resolved, plan_signature=sign_plan(plan.hash))
    if prove is not None:
        request.proof = prove(request)
    return await _update(client, incident, IncidentWorkflow.run_runbook, request, "run refused")


async def update_review(client: Client, incident: str, edit: ReviewEdit) -> CommandReceipt:
    """Set parts of the post-incident review (the workflow validates the fields and who edits)."""
    return await _update(client, incident, IncidentWorkflow.update_review, edit, "review edit refused")


async def assign_incident(client: Client, incident: str, assignment: Assignment) -> dict[str, Any]:
    return await _update(client, incident, IncidentWorkflow.assign, assignment, "assignment refused")


async def acknowledge_incident(client: Client, incident: str, ack: Acknowledgement) -> dict[str, Any]:
    return await _update(client, incident, IncidentWorkflow.acknowledge, ack, "acknowledgement refused")


async def _update(client: Client, incident: str, update: Any, arg: Any, refusal: str) -> Any:
    try:
        return await _handle(client, incident).execute_update(update, arg)
    except WorkflowUpdateFailedError as exc:
        reason = getattr(exc.cause, "message", None) or str(exc.cause or exc)
        raise IncidentError(f"{refusal}: {reason}", "refused") from None
    except RPCError as exc:
        if "already completed" in exc.message:
            raise IncidentError(f"{refusal}: incident {incident!r} is closed", "refused") from None
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise IncidentError(f"no incident {incident!r}", "not_found") from None
        raise IncidentError(f"cannot reach incident {incident!r}: {exc.message}", "unreachable") from None


# More candidates than this are not worth listing in the refusal: the prefix is far too short.
SHOWN_CANDIDATES = 10


async def resolve_incident_id(client: Client, given: str) -> str:
    """The incident id `given` names: itself when an incident has that id, else the one incident whose id starts
    with it (or with `incident-<given>`). Several -> a refusal listing them; none -> `given` (the command then
    says there is no such incident)."""
    try:
        await _handle(client, given).describe()
        return given
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            return given  # the command that follows reports the real problem
    candidates: list[str] = []
    for prefix in dict.fromkeys((given, f"incident-{given}")):
        query = f"WorkflowType = 'IncidentWorkflow' AND WorkflowId STARTS_WITH {visibility_quote(prefix)}"
        try:
            async for execution in client.list_workflows(query, limit=SHOWN_CANDIDATES * 4):
                if execution.id not in candidates:
                    candidates.append(execution.id)
        except RPCError:
            return given
    if len(candidates) > 1:
        shown = ", ".join(candidates[:SHOWN_CANDIDATES]) + (", ..." if len(candidates) > SHOWN_CANDIDATES else "")
        raise IncidentError(f"{given!r} is ambiguous: it begins {len(candidates)} incident ids ({shown}); give more "
                            "of the id", "invalid")
    return candidates[0] if candidates else given
