"""IncidentWorkflow: one durable workflow per incident, open until a person closes it.

This module holds the Temporal surface only (run, updates, signal, queries); the work is done in the rooms:
interpreter (steps and control flow), lifecycle (mitigated -> monitoring -> resolved -> closed), approvals,
alerts, communication, state. The plan arrives as workflow input (and is carried across continue-as-new), so
editing a runbook file never changes a running incident. Everything here is deterministic: time comes from
`workflow.now()`, expressions are pure, and all I/O happens in activities named after actions.

Incidents started before the lifecycle existed ended with their runbook; `workflow.patched(LIFECYCLE)` keeps
their histories replaying on that path (`_run_to_end_of_runbook`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from workflows import alerts, metrics
    from workflows.approvals import PEOPLE_CHECKED, apply_decision, decision_problem
    from workflows.communication import UPDATES_PAUSED_WHILE_RESOLVED, Communicator
    from workflows.context import IncidentRun, Scope
    from workflows.errors import ContinueAsNewRequested, RollbackRequested, RunbookEnded, StepFailed
    from workflows.identity_gate import IdentityGate
    from workflows.interpreter import Interpreter
    from workflows.lifecycle import FINAL, RUNBOOK_RUNNING, Lifecycle, command_problem, hands_over
    from workflows.model import (
        CANCELLED,
        FAILED,
        MITIGATING,
        RESOLVED,
        ROLLED_BACK,
        RUNNING,
        Acknowledgement,
        AlertNotification,
        AlertReceipt,
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
    )
    from workflows.plan_check import admit
    from workflows.review import review_problem
    from workflows.runbooks import Runbooks
    from workflows.target_state import LeaseAnswer
    from workflows.targets import LEASE_ANSWER_SIGNAL, RELEASE_INCIDENT_SIGNAL, target_workflow_id

LIFECYCLE = "incident-lifecycle"
PLAN_CHECKED = "plan-checked"
PATCHES_AT_START = "patches-asked-at-start"
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")


@workflow.defn
class IncidentWorkflow:
    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        # Set here, not in run(): an update delivered with the start (update-with-start) runs first.
        self._run = IncidentRun(inp)
        self._comms = Communicator(self._run)
        self._interpreter = Interpreter(self._run, self._comms, self._continue_as_new_due)
        self._runbooks = Runbooks(self._run, self._interpreter, self._comms)
        self._lifecycle = Lifecycle(self._run, self._runbooks.run_again, self._comms.tell, self._continue_as_new_due)
        self._runbooks.lifecycle = self._lifecycle
        # Decided before any handler runs (an update may arrive with the start, or right after continue-as-new).
        self._with_lifecycle = workflow.patched(LIFECYCLE)
        # Every patch a room asks about later is asked now, before the admission's local activity: a patch first
        # asked in the workflow task that ran a local activity is not matched when the incident is rebuilt from
        # its history by another worker (tests/test_replay.py). Incidents started before this ask as they did.
        if workflow.patched(PATCHES_AT_START):
            self._run.people_checked = workflow.patched(PEOPLE_CHECKED)
            self._comms.paused_while_resolved = workflow.patched(UPDATES_PAUSED_WHILE_RESOLVED)
        self._continuing = False
        self._identity = IdentityGate(self._run, admitting=not inp.carried)
        state = self._run.state
        if inp.carried:
            state.restore(inp.carried)
        else:
            state.started_at = workflow.now().isoformat()
            runbook = self._run.plan.runbook
            self._run.event("incident_started", detail={
                "runbook": runbook.name, "version": runbook.version, "plan_hash": self._run.plan.hash or None,
                "severity": inp.severity, "started_by": inp.started_by, "dry_run": inp.dry_run,
            })
            metrics.count(metrics.INCIDENTS_OPENED, runbook=runbook.name, severity=inp.severity)

    # ---------------------------------------------------------------- entry point

    @workflow.run
    async def run(self, inp: IncidentInput) -> dict[str, Any]:
        run, state = self._run, self._run.state
        if not inp.carried and workflow.patched(PLAN_CHECKED):
            # Before any step or message: a plan nobody compiled with this deployment's key does nothing.
            try:
                admission = await admit(inp.plan, inp.plan_signature)
                verdict = admission["plan"]
                run.event("plan_check", detail=verdict)
                if not verdict["ok"]:
                    raise ApplicationError(f"plan refused: {verdict['reason']}", type="PlanRefused",
                                           non_retryable=True)
                self._pin_people(admission)
                self._identity.pin(admission)
                unproven = self._identity.start_problem()
                if unproven:
                    run.event("start_refused", detail={"started_by": inp.started_by, "reason": unproven})
                    raise ApplicationError(f"start refused: {unproven}", type="StartRefused", non_retryable=True)
            except (asyncio.CancelledError, CancelledError):
                self._runbooks.finish(CANCELLED)  # nothing of the plan ran, and its on_cancel does not either
                raise
        self._identity.admitting = False  # admitted above, or started before admission existed
        if self._with_lifecycle and state.status in (RUNNING, MITIGATING) and not state.runbook_runs:
            state.status = MITIGATING  # a new incident, or one that continued-as-new before the lifecycle
            state.mark("opened_at", state.started_at)
            self._runbooks.start_record(inp.started_by or "incidentctl")
        run.set_status(state.status)
        if not inp.carried and inp.track_refires:
            state.refires = await workflow.execute_activity(
                "incident.previous_runs", inp.incident_id, start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            if state.refires.get("count"):
                run.event("incident_refired", detail=state.refires)
        scope = Scope(results=state.results)
        await self._comms.open(first_run=not inp.carried)
        if not self._with_lifecycle:
            return await self._run_to_end_of_runbook(inp, scope)
        try:
            if state.status in RUNBOOK_RUNNING:
                await self._runbooks.execute(scope)
            await self._lifecycle.serve()
        except ContinueAsNewRequested:
            await self._continue_as_new(inp)
        except (asyncio.CancelledError, CancelledError):
            await self._runbooks.cancel(scope)
            await self._release_target()
            raise
        state.finished_at = workflow.now().isoformat()
        await self._release_target()
        await self._comms.close()
        await workflow.wait_condition(workflow.all_handlers_finished)  # the closing person's update answers
        return run.summary()

    async def _run_to_end_of_runbook(self, inp: IncidentInput, scope: Scope) -> dict[str, Any]:
        """Incidents started before the lifecycle: they ended with their runbook, and still replay so."""
        state = self._run.state
        try:
            await self._interpreter.run_top_level(scope)
            self._runbooks.finish(RESOLVED)
        except RunbookEnded:
            self._runbooks.finish(RESOLVED)
        except StepFailed as failed:
            state.failure = {"step": failed.step, **failed.error}
            self._runbooks.finish(FAILED)
        except RollbackRequested as request:
            state.failure = {"step": request.step, **request.error}
            self._runbooks.finish(ROLLED_BACK if await self._runbooks.rollback(scope) else FAILED)
        except ContinueAsNewRequested:
            await self._continue_as_new(inp)
        except (asyncio.CancelledError, CancelledError):
            self._run.event("incident_cancelled")
            self._runbooks.finish(CANCELLED)
            raise
        await self._comms.close()
        return self._run.summary()

    async def _continue_as_new(self, inp: IncidentInput) -> None:
        state = self._run.state
        self._continuing = True  # waiting `runbook_outcome` updates answer, so every handler can finish
        await self._comms.stop_status_updates()
        await workflow.wait_condition(workflow.all_handlers_finished)
        state.runs += 1
        self._run.event("continued_as_new", detail={"next_step_index": state.pc, "run": state.runs})
        workflow.continue_as_new(IncidentInput(**{**inp.__dict__, "carried": state.carry()}))

    def _pin_people(self, admission: dict[str, Any]) -> None:
        """Groups from the worker's people file, not from whoever started the incident (who could name anyone)."""
        run = self._run
        if admission.get("groups") is None:
            run.state.groups = {}  # nobody approves through a group, rather than the starter's list
            run.event("people_unavailable", detail={"error": admission.get("people_error")})
            return
        run.state.groups = admission["groups"]
        run.event("people_loaded", detail={"groups": {name: len(members)
                                                      for name, members in sorted(run.state.groups.items())}})

    async def _release_target(self) -> None:
        """The incident is over: the next alert about its target opens a new incident (or joins another)."""
        target = self._run.input.target
        if not target:
            return
        try:
            await workflow.get_external_workflow_handle(target_workflow_id(target)).signal(
                RELEASE_INCIDENT_SIGNAL, self._run.input.incident_id)
        except Exception as exc:  # noqa: BLE001 - the target already ended: nothing holds this incident
            self._run.event("target_release_failed", detail={"target": target, "error": str(exc)})

    def _continue_as_new_due(self) -> bool:
        state = self._run.state
        if state.status in RUNBOOK_RUNNING and len(state.runbook_runs) > 1:
            return False  # a runbook run again or run by a person is not carried: it finishes in this run
        info = workflow.info()
        return (info.is_continue_as_new_suggested()
                or info.get_current_history_length() > self._run.input.history_event_limit)

    @workflow.update
    async def runbook_outcome(self) -> dict[str, Any]:
        """Answers once the runbook running now has finished (the incident itself stays open): `start --wait`
        and tools wait on this instead of polling. Before continue-as-new it answers ContinuedAsNew: ask again."""
        state = self._run.state
        await workflow.wait_condition(lambda: self._continuing or state.status in FINAL or (
            state.outcome is not None and state.status not in RUNBOOK_RUNNING))
        if self._continuing and state.status not in FINAL:
            raise ApplicationError("the incident continued as new: ask again", type="ContinuedAsNew",
                                   non_retryable=True)
        return self._run.summary()

    # ---------------------------------------------------------------- people's commands

    def _command_problem(self, command: Any) -> str | None:
        if not self._with_lifecycle:
            return "this incident was started before incidents had a lifecycle: it ends with its runbook"
        return self._identity.problem(command) or command_problem(self._run.state, command)

    def _verified(self, command: Any) -> None:
        """In a handler: the command's proof is spent (refused when the state changed since its validator)."""
        problem = self._identity.spend(command)
        if problem:
            raise ApplicationError(problem, type="IdentityRefused", non_retryable=True)

    def _receipt(self, **detail: Any) -> CommandReceipt:
        return CommandReceipt(incident_id=self._run.input.incident_id, status=self._run.state.status, detail=detail)

    @workflow.update
    def note(self, note: Note) -> CommandReceipt:
        self._verified(note)
        entry = {"at": workflow.now().isoformat(), "by": note.by, "text": note.text}
        self._run.state.notes.append(entry)
        self._run.event("note_added", detail={"by": note.by, "text": note.text})
        return self._receipt(notes=len(self._run.state.notes))

    @note.validator
    def _validate_note(self, note: Note) -> None:
        problem = self._command_problem(note) or (None if note.text.strip() else "the note is empty")
        if problem:
            raise ValueError(problem)

    @workflow.update
    def change_severity(self, change: SeverityChange) -> CommandReceipt:
        self._verified(change)
        state = self._run.state
        entry = {"at": workflow.now().isoformat(), "by": change.by, "from": state.severity, "to": change.severity,
                 "reason": change.reason}
        state.severity_changes.append(entry)
        self._run.set_severity(change.severity)
        self._run.event("severity_changed", detail={k: v for k, v in entry.items() if k != "at"})
        return self._receipt(severity=change.severity)

    @change_severity.validator
    def _validate_severity(self, change: SeverityChange) -> None:
        problem = self._command_problem(change)
        if not problem and change.severity not in SEVERITIES:
            problem = f"severity must be one of {', '.join(SEVERITIES)}, not {change.severity!r}"
        if not problem and change.severity == self._run.state.severity:
            problem = f"the incident is already {change.severity}"
        if problem:
            raise ValueError(problem)

    async def _carry_out(self, command: Any) -> CommandReceipt:
        """Hand a command to the lifecycle's loop and answer once it took effect (or was refused there)."""
        self._verified(command)
        number = self._lifecycle.enqueue(command)
        await workflow.wait_condition(lambda: number in self._lifecycle.carried_out)
        result = self._lifecycle.carried_out.pop(number)
        if result != "done":
            raise ApplicationError(result, type="CommandRefused", non_retryable=True)
        return self._receipt()

    @workflow.update
    async def resolve(self, resolution: Resolution) -> CommandReceipt:
        return await self._carry_out(resolution)

    @workflow.update
    async def reopen(self, reopening: Reopening) -> CommandReceipt:
        return await self._carry_out(reopening)

    @workflow.update
    async def close(self, closure: Closure) -> CommandReceipt:
        return await self._carry_out(closure)

    @workflow.update
    async def run_runbook(self, request: RunbookRequest) -> CommandReceipt:
        return await self._carry_out(request)

    @resolve.validator
    def _validate_resolve(self, resolution: Resolution) -> None:
        self._refuse_if(resolution)

    @reopen.validator
    def _validate_reopen(self, reopening: Reopening) -> None:
        self._refuse_if(reopening)

    @close.validator
    def _validate_close(self, closure: Closure) -> None:
        self._refuse_if(closure)

    @run_runbook.validator
    def _validate_run_runbook(self, request: RunbookRequest) -> None:
        self._refuse_if(request)

    def _refuse_if(self, command: Any) -> None:
        pending = [type(c).__name__ for c in self._lifecycle.commands]
        problem = self._command_problem(command) or (
            f"another command is being carried out ({', '.join(pending)})" if pending else None)
        if problem:
            raise ValueError(problem)

    @workflow.update
    def update_review(self, edit: ReviewEdit) -> CommandReceipt:
        self._verified(edit)
        review, now = self._run.state.review, workflow.now().isoformat()
        for key, value in edit.fields.items():
            if key == "completed":
                review.update(completed_by=edit.by if value else None, completed_at=now if value else None)
            else:
                review[key] = value
        self._run.event("review_updated", detail={"by": edit.by, "fields": sorted(edit.fields)})
        return self._receipt(review=dict(review))

    @update_review.validator
    def _validate_review(self, edit: ReviewEdit) -> None:
        problem = self._command_problem(edit) or review_problem(edit.fields)
        if problem:
            raise ValueError(problem)

    # ---------------------------------------------------------------- approvals

    def _decision_problem(self, decision: ApprovalDecision) -> tuple[Any, str | None]:
        pending, problem = decision_problem(self._run.state.approvals, decision, self._run.groups,
                                            self._run.input.started_by)
        identity_problem = self._identity.problem(decision) if pending is not None else None
        return (None, identity_problem) if identity_problem else (pending, problem)

    @workflow.update
    async def decide_approval(self, decision: ApprovalDecision) -> ApprovalReceipt:
        pending, problem = self._decision_problem(decision)
        if pending is None:
            # The validator refuses these first; this covers state that changed in between.
            raise ApplicationError(problem or "approval refused", type="ApprovalRefused", non_retryable=True)
        self._verified(decision)
        return apply_decision(self._run.state, pending, decision, workflow.now().isoformat())

    @decide_approval.validator
    def _validate_decision(self, decision: ApprovalDecision) -> None:
        _, problem = self._decision_problem(decision)
        if problem:
            raise ValueError(problem)

    @workflow.signal
    def approve(self, decision: ApprovalDecision) -> None:
        """For tools that can only signal: checked here, refusals land on the timeline."""
        pending, problem = self._decision_problem(decision)
        problem = problem if pending is None else self._identity.spend(decision)
        if problem:
            self._run.event("approval_refused", decision.step or None,
                            {"approver": decision.approver, "reason": problem})
            return
        apply_decision(self._run.state, pending, decision, workflow.now().isoformat())

    @workflow.signal(name=LEASE_ANSWER_SIGNAL)
    def lease_answer(self, answer: LeaseAnswer) -> None:
        """The object's TargetWorkflow answering a lease request of a mutating step (workflows/leases.py)."""
        self._interpreter.leases.on_answer(answer)

    # ---------------------------------------------------------------- alerts

    @workflow.update
    def alert_notification(self, notification: AlertNotification) -> AlertReceipt:
        """A delivery for this incident (deduplicated upstream by update-with-start on the incident key)."""
        state = self._run.state
        new_alerts = alerts.record_notification(state, notification, workflow.now().isoformat(),
                                                self._run.plan.on_alert_resolved)
        successor = self._with_lifecycle and hands_over(state, workflow.now())
        return AlertReceipt(incident_id=self._run.input.incident_id, run_id=workflow.info().run_id,
                            new_alerts=new_alerts, status=state.status, successor=successor,
                            **alerts.receipt_counts(state))

    @alert_notification.validator
    def _validate_alert_notification(self, notification: AlertNotification) -> None:
        problem = alerts.notification_problem(notification)
        if problem:
            raise ValueError(problem)

    # ---------------------------------------------------------------- roles

    @workflow.update
    def assign(self, assignment: Assignment) -> dict[str, Any]:
        self._verified(assignment)
        roles = self._run.state.roles
        changed = {k: v for k, v in (("commander", assignment.commander), ("assignee", assignment.assignee)) if v}
        roles.update(changed)
        self._run.event("assigned", detail={"by": assignment.by, **changed})
        return dict(roles)

    @assign.validator
    def _validate_assign(self, assignment: Assignment) -> None:
        if not assignment.by.strip():
            raise ValueError("say who assigns (--as)")
        if not (assignment.commander.strip() or assignment.assignee.strip()):
            raise ValueError("give a commander, an assignee, or both")
        problem = self._identity.problem(assignment)
        if problem:
            raise ValueError(problem)

    @workflow.update
    def acknowledge(self, ack: Acknowledgement) -> dict[str, Any]:
        self._verified(ack)
        state, now = self._run.state, workflow.now()
        started = datetime.fromisoformat(state.started_at) if state.started_at else now
        state.roles.update(acknowledged_by=ack.by, acknowledged_at=now.isoformat(),
                           time_to_ack_s=round((now - started).total_seconds(), 3))
        state.mark("acknowledged_at", now.isoformat())
        self._run.event("acknowledged", detail={"by": ack.by, "time_to_ack_s": state.roles["time_to_ack_s"]})
        return dict(state.roles)

    @acknowledge.validator
    def _validate_ack(self, ack: Acknowledgement) -> None:
        roles = self._run.state.roles
        if not ack.by.strip():
            raise ValueError("say who acknowledges (--as)")
        if roles.get("acknowledged_by"):
            raise ValueError(f"already acknowledged by {roles['acknowledged_by']} at {roles['acknowledged_at']}")
        problem = self._identity.problem(ack)
        if problem:
            raise ValueError(problem)

    # ---------------------------------------------------------------- queries

    @workflow.query
    def state(self) -> dict[str, Any]:
        return self._run.summary()

    @workflow.query
    def current_step(self) -> list[str]:
        return list(self._run.state.running)

    @workflow.query
    def timeline(self) -> list[dict[str, Any]]:
        return list(self._run.state.timeline)
