"""IncidentWorkflow: one durable workflow per incident, interpreting a compiled runbook plan.

This module holds the Temporal surface only (run, updates, signal, queries); the work is done in the rooms:
interpreter (steps and control flow), approvals, alerts, communication, state. The plan arrives as workflow
input (and is carried across continue-as-new), so editing a runbook file never changes a running incident.
Everything here is deterministic: time comes from `workflow.now()`, expressions are pure, and all I/O happens
in activities named after actions.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from workflows import alerts
    from workflows.approvals import apply_decision, decision_problem
    from workflows.communication import Communicator
    from workflows.context import IncidentRun, Scope
    from workflows.errors import ContinueAsNewRequested, RollbackRequested, RunbookEnded, StepFailed
    from workflows.interpreter import Interpreter
    from workflows.model import (
        CANCELLED,
        FAILED,
        RESOLVED,
        ROLLED_BACK,
        ROLLING_BACK,
        Acknowledgement,
        AlertNotification,
        AlertReceipt,
        ApprovalDecision,
        ApprovalReceipt,
        Assignment,
        IncidentInput,
    )


@workflow.defn
class IncidentWorkflow:
    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        # Set here, not in run(): an update delivered with the start (update-with-start) runs first.
        self._run = IncidentRun(inp)
        self._comms = Communicator(self._run)
        self._interpreter = Interpreter(self._run, self._comms, self._continue_as_new_due)
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

    # ---------------------------------------------------------------- entry point

    @workflow.run
    async def run(self, inp: IncidentInput) -> dict[str, Any]:
        run, state = self._run, self._run.state
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
        try:
            await self._interpreter.run_top_level(scope)
            self._finish(RESOLVED)
        except RunbookEnded:
            self._finish(RESOLVED)
        except StepFailed as failed:
            state.failure = {"step": failed.step, **failed.error}
            self._finish(FAILED)
        except RollbackRequested as request:
            state.failure = {"step": request.step, **request.error}
            await self._rollback(scope)
        except ContinueAsNewRequested:
            await self._comms.stop_status_updates()
            await workflow.wait_condition(workflow.all_handlers_finished)
            state.runs += 1
            run.event("continued_as_new", detail={"next_step_index": state.pc, "run": state.runs})
            workflow.continue_as_new(IncidentInput(**{**inp.__dict__, "carried": state.carry()}))
        except (asyncio.CancelledError, CancelledError):
            run.event("incident_cancelled")
            self._finish(CANCELLED)
            raise
        await self._comms.close()
        return run.summary()

    async def _rollback(self, scope: Scope) -> None:
        self._run.set_status(ROLLING_BACK)
        self._run.event("rollback_started", detail={"after": self._run.state.failure})
        try:
            await self._interpreter.run_list(self._run.plan.rollback, scope)
        except (StepFailed, RollbackRequested, RunbookEnded) as exc:
            self._run.event("rollback_failed", detail={"error": str(exc)})
            self._finish(FAILED)
            return
        self._finish(ROLLED_BACK)

    def _finish(self, status: str) -> None:
        state = self._run.state
        state.finished_at = workflow.now().isoformat()
        self._run.event(f"incident_{status}", detail={"failure": state.failure} if state.failure else None)
        self._run.set_status(status)

    def _continue_as_new_due(self) -> bool:
        info = workflow.info()
        return (info.is_continue_as_new_suggested()
                or info.get_current_history_length() > self._run.input.history_event_limit)

    # ---------------------------------------------------------------- approvals

    def _decision_problem(self, decision: ApprovalDecision) -> tuple[Any, str | None]:
        inp = self._run.input
        return decision_problem(self._run.state.approvals, decision, inp.groups, inp.started_by)

    @workflow.update
    async def decide_approval(self, decision: ApprovalDecision) -> ApprovalReceipt:
        pending, problem = self._decision_problem(decision)
        if pending is None:
            # The validator refuses these first; this covers state that changed in between.
            raise ApplicationError(problem or "approval refused", type="ApprovalRefused", non_retryable=True)
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
        if pending is None:
            self._run.event("approval_refused", decision.step or None,
                            {"approver": decision.approver, "reason": problem})
            return
        apply_decision(self._run.state, pending, decision, workflow.now().isoformat())

    # ---------------------------------------------------------------- alerts

    @workflow.update
    def alert_notification(self, notification: AlertNotification) -> AlertReceipt:
        """A delivery for this incident (deduplicated upstream by update-with-start on the incident key)."""
        state = self._run.state
        new_alerts = alerts.record_notification(state, notification, workflow.now().isoformat(),
                                                self._run.plan.on_alert_resolved)
        return AlertReceipt(incident_id=self._run.input.incident_id, run_id=workflow.info().run_id,
                            new_alerts=new_alerts, status=state.status, **alerts.receipt_counts(state))

    @alert_notification.validator
    def _validate_alert_notification(self, notification: AlertNotification) -> None:
        problem = alerts.notification_problem(notification)
        if problem:
            raise ValueError(problem)

    # ---------------------------------------------------------------- roles

    @workflow.update
    def assign(self, assignment: Assignment) -> dict[str, Any]:
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

    @workflow.update
    def acknowledge(self, ack: Acknowledgement) -> dict[str, Any]:
        state, now = self._run.state, workflow.now()
        started = datetime.fromisoformat(state.started_at) if state.started_at else now
        state.roles.update(acknowledged_by=ack.by, acknowledged_at=now.isoformat(),
                           time_to_ack_s=round((now - started).total_seconds(), 3))
        self._run.event("acknowledged", detail={"by": ack.by, "time_to_ack_s": state.roles["time_to_ack_s"]})
        return dict(state.roles)

    @acknowledge.validator
    def _validate_ack(self, ack: Acknowledgement) -> None:
        roles = self._run.state.roles
        if not ack.by.strip():
            raise ValueError("say who acknowledges (--as)")
        if roles.get("acknowledged_by"):
            raise ValueError(f"already acknowledged by {roles['acknowledged_by']} at {roles['acknowledged_at']}")

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
