"""IncidentWorkflow: one durable workflow per incident, interpreting a compiled runbook plan.

The plan arrives as workflow input (and is carried across continue-as-new), so editing a runbook file never
changes an incident that is already running. Everything here is deterministic: time comes from
`workflow.now()`, expressions are pure, and all I/O happens in activities named after actions.
"""

from __future__ import annotations

import asyncio
import builtins
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.base import ActionInput
    from incidentctl.dsl import expressions
    from workflows import messages
    from workflows.model import (
        CANCELLED,
        FAILED,
        RESOLVED,
        ROLLED_BACK,
        ROLLING_BACK,
        RUNBOOK_ATTR,
        RUNNING,
        SERVICE_ATTR,
        SEVERITY_ATTR,
        STATUS_ATTR,
        WAITING_APPROVAL,
        Acknowledgement,
        AlertNotification,
        AlertReceipt,
        ApprovalDecision,
        ApprovalReceipt,
        Assignment,
        IncidentInput,
    )

MAX_FOREACH_ITEMS = 500
MAX_TIMELINE_EVENTS = 2000


class StepFailed(Exception):
    """A step failed and its on_failure says abort: the enclosing step (or the incident) fails."""

    def __init__(self, step: str, error: dict[str, Any]) -> None:
        super().__init__(f"step {step} failed: {error.get('message')}")
        self.step = step
        self.error = error


class RollbackRequested(Exception):
    """A step failed with on_failure: rollback; unwinds to the top, which runs the rollback steps."""

    def __init__(self, step: str, error: dict[str, Any]) -> None:
        super().__init__(f"step {step} failed, rolling back: {error.get('message')}")
        self.step = step
        self.error = error


class RunbookEnded(Exception):
    """A step with `end: true` succeeded: the runbook is finished, wherever that step was nested."""


@dataclass
class Scope:
    """Step results and loop variables visible to expressions; foreach iterations get a child scope."""

    results: dict[str, dict[str, Any]]
    variables: dict[str, Any] = field(default_factory=dict)
    key_suffix: str = ""
    parent: Scope | None = None

    def child(self, variables: dict[str, Any], key_suffix: str) -> Scope:
        return Scope(results={}, variables=variables, key_suffix=self.key_suffix + key_suffix, parent=self)

    def visible_results(self) -> dict[str, dict[str, Any]]:
        merged = self.parent.visible_results() if self.parent else {}
        return {**merged, **self.results}

    def visible_variables(self) -> dict[str, Any]:
        merged = self.parent.visible_variables() if self.parent else {}
        return {**merged, **self.variables}


@dataclass
class PendingApproval:
    step: str
    approvers: list[str]
    groups: list[str]
    required: int
    message: str
    requested_at: str
    votes: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "pending"
    allow_self_approval: bool = False
    stage: int = 0
    deadline: str | None = None


def _error_of(exc: BaseException) -> dict[str, Any]:
    """The innermost meaningful failure of an activity error, as data for outputs and the timeline."""
    cause: BaseException | None = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return {"type": cause.type or "ApplicationError", "message": cause.message}
    if isinstance(cause, TimeoutError):
        return {"type": "Timeout", "message": f"timed out ({cause.type.name.lower() if cause.type else 'timeout'})"}
    if isinstance(cause, StepFailed):
        return cause.error
    return {"type": type(cause).__name__, "message": str(cause)}


@workflow.defn
class IncidentWorkflow:
    @workflow.init
    def __init__(self, inp: IncidentInput) -> None:
        # Set here, not in run(): an update delivered with the start (update-with-start) runs first.
        self._input: IncidentInput | None = inp
        self._status = RUNNING
        self._pc = 0
        self._results: dict[str, dict[str, Any]] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._timeline: list[dict[str, Any]] = []
        self._events_dropped = 0
        self._running: list[str] = []
        self._approvals: dict[str, PendingApproval] = {}
        self._approval_log: list[dict[str, Any]] = []
        self._started_at = ""
        self._finished_at = ""
        self._failure: dict[str, Any] | None = None
        self._runs = 1
        self._alerts: dict[str, dict[str, Any]] = {}
        self._notifications = 0
        self._resolved_handled = False
        self._refires: dict[str, Any] = {"count": 0, "previous_run_id": None}
        self._comms_seq = 0
        self._finishing = False
        self._upcoming: dict[str, Any] | None = None
        self._cadence_task: asyncio.Future[None] | None = None
        runbook = inp.plan["runbook"]
        labels = (inp.alert or {}).get("labels") or {}
        # The runbook owner commands by default; the alert's team label routes the work, else the runbook's team.
        self._roles: dict[str, Any] = {"commander": runbook.get("owner") or "",
                                       "assignee": labels.get("team") or runbook.get("team") or "",
                                       "acknowledged_by": None, "acknowledged_at": None, "time_to_ack_s": None}
        if inp.carried:
            self._restore(inp.carried)
        else:
            self._started_at = workflow.now().isoformat()
            self._event(
                "incident_started",
                detail={
                    "runbook": self._runbook["name"],
                    "version": self._runbook.get("version"),
                    "plan_hash": inp.plan.get("hash"),
                    "severity": inp.severity,
                    "started_by": inp.started_by,
                    "dry_run": inp.dry_run,
                },
            )

    # ---------------------------------------------------------------- entry point

    @workflow.run
    async def run(self, inp: IncidentInput) -> dict[str, Any]:
        self._set_status(self._status)
        if not inp.carried and inp.track_refires:
            self._refires = await workflow.execute_activity(
                "incident.previous_runs", inp.incident_id, start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            if self._refires.get("count"):
                self._event("incident_refired", detail=self._refires)
        scope = Scope(results=self._results)
        if self._communication:
            if not inp.carried:
                await self._broadcast("opened", messages.opened(self._summary(), self._statement("impact")))
            self._cadence_task = asyncio.ensure_future(self._status_updates())
        try:
            await self._run_list(inp.plan["steps"], scope, top_level=True)
            self._finish(RESOLVED)
        except RunbookEnded:
            self._finish(RESOLVED)
        except StepFailed as failed:
            self._failure = {"step": failed.step, **failed.error}
            self._finish(FAILED)
        except RollbackRequested as request:
            self._failure = {"step": request.step, **request.error}
            await self._rollback(scope)
        except _ContinueAsNew:
            await self._stop_status_updates()
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(
                IncidentInput(**{**inp.__dict__, "carried": self._carry()}),
            )
        except (asyncio.CancelledError, CancelledError):
            self._event("incident_cancelled")
            self._finish(CANCELLED)
            raise
        await self._close_communication()
        return self._summary()

    async def _rollback(self, scope: Scope) -> None:
        assert self._input is not None
        self._set_status(ROLLING_BACK)
        self._event("rollback_started", detail={"after": self._failure})
        try:
            await self._run_list(self._input.plan.get("rollback") or [], scope, top_level=False)
        except (StepFailed, RollbackRequested, RunbookEnded) as exc:
            self._event("rollback_failed", detail={"error": str(exc)})
            self._finish(FAILED)
            return
        self._finish(ROLLED_BACK)

    # ---------------------------------------------------------------- interpreter

    async def _run_list(self, steps: list[dict[str, Any]], scope: Scope, *, top_level: bool) -> None:
        index = self._pc if top_level else 0
        positions = {step["id"]: i for i, step in enumerate(steps)}
        while index < len(steps):
            if top_level:
                jump = self._on_alert_resolved(steps, index)
                if jump is None:
                    raise RunbookEnded()
                index = jump
                self._pc = index
                self._maybe_continue_as_new()
                if index >= len(steps):
                    break
            step = steps[index]
            self._upcoming = steps[index + 1] if index + 1 < len(steps) else None
            try:
                outcome = await self._run_step(step, scope)
            except _AlertsResolved:
                if not top_level:
                    raise
                index += 1  # the policy is applied at the top of the loop
                continue
            if outcome in ("succeeded", "skipped"):
                if outcome == "succeeded" and step.get("end"):
                    raise RunbookEnded()
                index = positions[step["next"]] if step.get("next") and outcome == "succeeded" else index + 1
                continue
            error = scope.results[step["id"]]["error"]
            on_failure = step.get("on_failure") or {"mode": "abort"}
            mode = on_failure.get("mode", "abort")
            key = self._key(step, scope)
            if mode == "continue":
                index += 1
            elif mode == "goto":
                self._event("step_goto", key, {"target": on_failure["target"]})
                index = positions[on_failure["target"]]
            elif mode == "rollback":
                raise RollbackRequested(key, error)
            else:
                raise StepFailed(key, error)
        if top_level:
            self._pc = len(steps)

    async def _run_step(self, step: dict[str, Any], scope: Scope) -> str:
        key = self._key(step, scope)
        context = self._context(scope)
        if step.get("when"):
            try:
                should_run = expressions.condition(step["when"], context)
            except expressions.ExpressionError as exc:
                return self._record_failure(step, scope, {"type": "ExpressionError", "message": str(exc)})
            if not should_run:
                scope.results[step["id"]] = {"status": "skipped", "output": None, "error": None}
                self._records[key] = {"status": "skipped", "kind": step["kind"], "seq": len(self._records) + 1}
                self._event("step_skipped", key, {"when": step["when"]})
                return "skipped"
        self._records[key] = {"status": "running", "kind": step["kind"], "seq": len(self._records) + 1,
                              "started_at": workflow.now().isoformat()}
        self._running.append(key)
        self._event("step_started", key, {"kind": step["kind"], "action": step.get("action")})
        try:
            # Every kind's raw result goes through `outputs`, containers included (their body has run by then).
            output = self._outputs(step, scope, await self._execute(step, scope, key))
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                raise asyncio.CancelledError() from exc
            return self._record_failure(step, scope, _error_of(exc))
        except (StepFailed, _StepError) as exc:
            return self._record_failure(step, scope, _error_of(exc) if not isinstance(exc, _StepError) else exc.error)
        except expressions.ExpressionError as exc:
            return self._record_failure(step, scope, {"type": "ExpressionError", "message": str(exc)})
        except _AlertsResolved:
            self._supersede(step, scope)
            raise
        finally:
            if key in self._running:
                self._running.remove(key)
        scope.results[step["id"]] = {"status": "succeeded", "output": output, "error": None}
        self._records[key].update(status="succeeded", output=output, finished_at=workflow.now().isoformat())
        self._event("step_succeeded", key)
        return "succeeded"

    def _record_failure(self, step: dict[str, Any], scope: Scope, error: dict[str, Any]) -> str:
        key = self._key(step, scope)
        scope.results[step["id"]] = {"status": "failed", "output": None, "error": error}
        record = self._records.setdefault(key, {"kind": step["kind"], "seq": len(self._records) + 1})
        record.update(status="failed", error=error, finished_at=workflow.now().isoformat())
        self._event("step_failed", key, {"error": error})
        return "failed"

    async def _execute(self, step: dict[str, Any], scope: Scope, key: str) -> Any:
        kind = step["kind"]
        if kind in ("action", "notify"):
            return await self._call_action(step, scope, key)
        if kind == "check":
            result = await self._call_action(step, scope, key)
            if not expressions.condition(step["assert"], {**self._context(scope), "result": result}):
                message = step.get("message")
                text = expressions.render(message, {**self._context(scope), "result": result}) if message else None
                raise _StepError({"type": "CheckFailed", "message": text or f"assertion failed: {step['assert']}",
                                  "result": result})
            return result
        if kind == "wait_until":
            return await self._wait_until(step, scope, key)
        if kind == "sleep":
            await workflow.sleep(timedelta(seconds=step["duration_s"]))
            return {"slept_s": step["duration_s"]}
        if kind == "approval":
            return await self._approval(step, scope, key)
        if kind == "branch":
            return await self._branch(step, scope)
        if kind == "parallel":
            return await self._parallel(step, scope)
        if kind == "foreach":
            return await self._foreach(step, scope, key)
        raise _StepError({"type": "UnknownStepKind", "message": f"unknown step kind {kind!r}"})

    async def _call_action(self, step: dict[str, Any], scope: Scope, key: str) -> Any:
        assert self._input is not None
        params = expressions.render(step.get("params") or {}, self._context(scope))
        retry = step.get("retry") or {}
        mutates = bool(step.get("mutates"))
        return await workflow.execute_activity(
            step["action"],
            ActionInput(
                action=step["action"],
                params=params,
                incident_id=self._input.incident_id,
                step_id=key,
                dry_run=self._input.dry_run and mutates,
            ),
            start_to_close_timeout=timedelta(seconds=step.get("timeout_s") or 300),
            heartbeat_timeout=timedelta(seconds=step["heartbeat_s"]) if step.get("heartbeat_s") else None,
            retry_policy=RetryPolicy(
                maximum_attempts=int(retry.get("max_attempts", 3)),
                initial_interval=timedelta(seconds=retry.get("initial_interval_s", 1.0)),
                backoff_coefficient=float(retry.get("backoff", 2.0)),
                maximum_interval=timedelta(seconds=retry.get("max_interval_s", 30.0)),
                non_retryable_error_types=list(retry.get("non_retryable_errors") or []),
            ),
        )

    def _outputs(self, step: dict[str, Any], scope: Scope, result: Any) -> Any:
        if not step.get("outputs"):
            return result
        return expressions.render(step["outputs"], {**self._context(scope), "result": result})

    async def _wait_until(self, step: dict[str, Any], scope: Scope, key: str) -> Any:
        deadline = workflow.now() + timedelta(seconds=step.get("deadline_s") or 600)
        interval = timedelta(seconds=step.get("interval_s") or 10)
        polls = 0
        while True:
            result = await self._call_action(step, scope, key)
            polls += 1
            if expressions.condition(step["until"], {**self._context(scope), "result": result}):
                return {**result, "polls": polls} if isinstance(result, dict) else result
            if workflow.now() + interval > deadline:
                raise _StepError({
                    "type": "WaitTimeout",
                    "message": f"condition {step['until']!r} still false after {polls} polls "
                    f"({step.get('deadline_s')}s deadline)",
                    "result": result,
                })
            await workflow.sleep(interval)

    async def _branch(self, step: dict[str, Any], scope: Scope) -> Any:
        context = self._context(scope)
        for index, case in enumerate(step.get("cases") or []):
            if expressions.condition(case["when"], context):
                self._event("branch_taken", self._key(step, scope), {"case": index, "when": case["when"]})
                await self._run_list(case["steps"], scope, top_level=False)
                return {"case": index, "when": case["when"]}
        if step.get("default") is not None:
            self._event("branch_taken", self._key(step, scope), {"case": "default"})
            await self._run_list(step["default"], scope, top_level=False)
            return {"case": "default"}
        return {"case": None}

    async def _parallel(self, step: dict[str, Any], scope: Scope) -> Any:
        branches = step.get("branches") or []
        tasks = [asyncio.ensure_future(self._run_list(b["steps"], scope, top_level=False)) for b in branches]
        if step.get("fail_fast"):
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.exception() for t in done):
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        for exc in errors:
            if isinstance(exc, RollbackRequested | RunbookEnded | _AlertsResolved):
                raise exc
        failed = [b["name"] for b, o in zip(branches, outcomes, strict=True) if isinstance(o, BaseException)]
        if failed:
            first = next(e for e in errors if not isinstance(e, asyncio.CancelledError | CancelledError))
            raise _StepError({"type": "ParallelBranchFailed",
                              "message": f"branches failed: {', '.join(failed)}: {first}",
                              "branches": failed})
        return {"branches": [b["name"] for b in branches]}

    async def _foreach(self, step: dict[str, Any], scope: Scope, key: str) -> Any:
        items = expressions.evaluate(step["items"], self._context(scope))
        if not isinstance(items, list):
            raise _StepError({"type": "ForeachNotAList",
                              "message": f"foreach items must be a list, got {type(items).__name__}"})
        if len(items) > MAX_FOREACH_ITEMS:
            raise _StepError({"type": "ForeachTooLarge",
                              "message": f"{len(items)} items is over the limit of {MAX_FOREACH_ITEMS}"})
        variable = step.get("as") or "item"
        concurrency = max(1, int(step.get("concurrency") or 1))
        outputs: list[Any] = [None] * len(items)

        async def iteration(i: int) -> None:
            child = scope.child({variable: items[i], "loop": {"index": i, "length": len(items)}}, f"[{i}]")
            await self._run_list(step["steps"], child, top_level=False)
            outputs[i] = {sid: r.get("output") for sid, r in child.results.items()}

        for start in range(0, len(items), concurrency):
            await asyncio.gather(*(iteration(i) for i in range(start, min(start + concurrency, len(items)))))
        return {"items": len(items), "iterations": outputs}

    # ---------------------------------------------------------------- approvals

    async def _approval(self, step: dict[str, Any], scope: Scope, key: str) -> Any:
        spec = step.get("approval") or {}
        message = expressions.render(spec.get("message") or "", self._context(scope))
        pending = PendingApproval(
            step=key,
            approvers=list(spec.get("approvers") or []),
            groups=list(spec.get("groups") or []),
            required=int(spec.get("required") or 1),
            message=str(message),
            requested_at=workflow.now().isoformat(),
            allow_self_approval=bool(spec.get("allow_self_approval", False)),
        )
        self._approvals[key] = pending
        self._set_status(WAITING_APPROVAL)
        self._event("approval_requested", key, {"message": pending.message, "approvers": pending.approvers,
                                                 "groups": pending.groups, "required": pending.required})
        if self._communication:
            await self._request_approval(pending, scope)
        # Stage 0 is the step's own people; each escalation stage adds people once the previous one times out.
        stages = [{"timeout_s": spec.get("timeout_s")}, *(spec.get("escalation") or [])]
        try:
            for index, stage in enumerate(stages):
                if index:
                    pending.stage = index
                    pending.approvers += [a for a in stage.get("approvers", []) if a not in pending.approvers]
                    pending.groups += [g for g in stage.get("groups", []) if g not in pending.groups]
                    self._event("approval_escalated", key, {"stage": index, "approvers": pending.approvers,
                                                             "groups": pending.groups})
                timeout = stage.get("timeout_s")
                pending.deadline = (workflow.now() + timedelta(seconds=timeout)).isoformat() if timeout else None
                try:
                    await workflow.wait_condition(
                        lambda: pending.outcome != "pending" or self._alerts_cleared(),
                        timeout=timedelta(seconds=timeout) if timeout else None)
                    break
                except builtins.TimeoutError:
                    if index + 1 < len(stages):
                        continue
                    pending.outcome = "approved" if spec.get("on_timeout") == "approve" else "rejected"
                    self._event("approval_timed_out", key, {"outcome": pending.outcome, "timeout_s": timeout})
        finally:
            self._approvals.pop(key, None)
            if not self._approvals:
                self._set_status(RUNNING)
        if pending.outcome == "pending":
            # Nobody decided and the alerts cleared: the runbook's on_alert_resolved policy takes over.
            pending.outcome = "superseded"
            self._event("approval_superseded", key, {"reason": "all alerts resolved while waiting"})
            raise _AlertsResolved()
        output = {"approved": pending.outcome == "approved", "votes": pending.votes}
        if pending.outcome != "approved":
            rejecters = [v for v in pending.votes if not v["approve"]]
            reason = (f"rejected by {rejecters[0]['approver']}: {rejecters[0]['comment']}".rstrip(": ")
                      if rejecters else "approval timed out")
            raise _StepError({"type": "ApprovalRejected", "message": reason, "votes": pending.votes})
        return output

    def _approval_problem(self, decision: ApprovalDecision) -> tuple[PendingApproval | None, str | None]:
        """Why a decision must be refused, or the approval it applies to."""
        assert self._input is not None
        if not isinstance(decision.approver, str) or not decision.approver.strip():
            return None, "an approver name is required"
        if not self._approvals:
            return None, "no approval is waiting in this incident"
        if decision.step:
            matches = [p for k, p in self._approvals.items() if k == decision.step or k.split("[")[0] == decision.step]
            if not matches:
                waiting = ", ".join(self._approvals)
                return None, f"step {decision.step!r} is not waiting for approval (waiting: {waiting})"
            if len(matches) > 1:
                names = ", ".join(p.step for p in matches)
                return None, f"step {decision.step!r} has several approvals waiting: name one of {names}"
            pending = matches[0]
        elif len(self._approvals) == 1:
            pending = next(iter(self._approvals.values()))
        else:
            return None, f"several approvals are waiting ({', '.join(self._approvals)}): name the step"
        allowed = set(pending.approvers)
        for group in pending.groups:
            allowed.update(self._input.groups.get(group, []))
        if (pending.approvers or pending.groups) and decision.approver not in allowed:
            return None, f"{decision.approver!r} may not approve step {pending.step!r}"
        if (decision.approve and not pending.allow_self_approval and self._input.started_by
                and decision.approver == self._input.started_by):
            return None, (f"{decision.approver!r} started this incident and may not approve its own step "
                          f"{pending.step!r} (the runbook does not set allow_self_approval)")
        if any(v["approver"] == decision.approver for v in pending.votes):
            return None, f"{decision.approver!r} has already voted on step {pending.step!r}"
        return pending, None

    def _apply_decision(self, pending: PendingApproval, decision: ApprovalDecision) -> ApprovalReceipt:
        vote = {"approver": decision.approver, "approve": decision.approve, "comment": decision.comment,
                "at": workflow.now().isoformat()}
        pending.votes.append(vote)
        approvals = sum(1 for v in pending.votes if v["approve"])
        if not decision.approve:
            pending.outcome = "rejected"
        elif approvals >= pending.required:
            pending.outcome = "approved"
        self._approval_log.append({"step": pending.step, **vote})
        self._event("approval_decided", pending.step, {**vote, "outcome": pending.outcome})
        return ApprovalReceipt(step=pending.step, approver=decision.approver, approve=decision.approve,
                               approvals=approvals, required=pending.required, outcome=pending.outcome)

    @workflow.update
    async def decide_approval(self, decision: ApprovalDecision) -> ApprovalReceipt:
        pending, problem = self._approval_problem(decision)
        if pending is None:
            # The validator refuses these first; this covers state that changed in between.
            raise ApplicationError(problem or "approval refused", type="ApprovalRefused", non_retryable=True)
        return self._apply_decision(pending, decision)

    @decide_approval.validator
    def _validate_decision(self, decision: ApprovalDecision) -> None:
        _, problem = self._approval_problem(decision)
        if problem:
            raise ValueError(problem)

    @workflow.signal
    def approve(self, decision: ApprovalDecision) -> None:
        """For tools that can only signal: checked here, refusals land on the timeline."""
        pending, problem = self._approval_problem(decision)
        if pending is None:
            self._event("approval_refused", decision.step or None,
                        {"approver": decision.approver, "reason": problem})
            return
        self._apply_decision(pending, decision)

    # ---------------------------------------------------------------- alerts

    @workflow.update
    def alert_notification(self, notification: AlertNotification) -> AlertReceipt:
        """A delivery for this incident (deduplicated upstream by update-with-start on the incident key)."""
        assert self._input is not None
        self._notifications += 1
        now = workflow.now().isoformat()
        new_alerts = 0
        for alert in notification.alerts:
            fingerprint, status = alert["fingerprint"], alert.get("status", "firing")
            known = self._alerts.get(fingerprint)
            if known is None:
                new_alerts += 1
                self._alerts[fingerprint] = {"status": status, "labels": alert.get("labels", {}), "first_seen": now,
                                             "last_seen": now, "notifications": 1, "refired": 0}
                self._event(f"alert_{status}", detail={"fingerprint": fingerprint, "labels": alert.get("labels")})
                continue
            known["notifications"] += 1
            known["last_seen"] = now
            if known["status"] != status:
                # Repeats are only counted; a change of status is a story event.
                if status == "firing":
                    known["refired"] += 1
                known["status"] = status
                self._event(f"alert_{status}", detail={"fingerprint": fingerprint, "repeat": known["notifications"]})
        firing = sum(1 for a in self._alerts.values() if a["status"] == "firing")
        if firing == 0 and self._alerts and not self._resolved_handled:
            self._event("alerts_all_resolved", detail={"policy": self._resolve_policy()})
        return AlertReceipt(incident_id=self._input.incident_id, run_id=workflow.info().run_id,
                            notifications=self._notifications, firing=firing,
                            resolved=len(self._alerts) - firing, new_alerts=new_alerts, status=self._status)

    @alert_notification.validator
    def _validate_alert_notification(self, notification: AlertNotification) -> None:
        if not notification.alerts:
            raise ValueError("a notification needs at least one alert")
        for alert in notification.alerts:
            if not isinstance(alert, dict) or not alert.get("fingerprint"):
                raise ValueError("every alert needs a fingerprint")
            if alert.get("status", "firing") not in ("firing", "resolved"):
                raise ValueError(f"alert status must be firing or resolved, not {alert.get('status')!r}")

    def _resolve_policy(self) -> dict[str, Any]:
        assert self._input is not None
        return self._input.plan.get("on_alert_resolved") or {"mode": "continue", "target": None}

    def _alert_status(self) -> str | None:
        if not self._alerts:
            return None
        return "firing" if any(a["status"] == "firing" for a in self._alerts.values()) else "resolved"

    def _alerts_cleared(self) -> bool:
        """All alerts resolved and the runbook wants that to change course (not yet applied)."""
        return (not self._resolved_handled and self._alert_status() == "resolved"
                and self._resolve_policy()["mode"] != "continue")

    def _supersede(self, step: dict[str, Any], scope: Scope) -> None:
        key = self._key(step, scope)
        if key in self._running:
            self._running.remove(key)
        scope.results[step["id"]] = {"status": "superseded", "output": None, "error": None}
        self._records.setdefault(key, {"kind": step["kind"], "seq": len(self._records) + 1}).update(
            status="superseded", finished_at=workflow.now().isoformat())
        self._event("step_superseded", key, {"reason": "all alerts resolved"})

    def _on_alert_resolved(self, steps: list[dict[str, Any]], index: int) -> int | None:
        """Between top-level steps: apply the runbook's policy once all alerts resolved (None = finish)."""
        if self._resolved_handled or self._alert_status() != "resolved":
            return index
        policy = self._resolve_policy()
        if policy["mode"] == "continue":
            return index
        self._resolved_handled = True
        if policy["mode"] == "finish":
            self._event("runbook_finished_early", detail={"reason": "all alerts resolved"})
            return None
        target = next((i for i, s in enumerate(steps) if s["id"] == policy["target"]), index)
        if target > index:
            self._event("step_goto", steps[target]["id"], {"target": policy["target"], "reason": "alerts resolved"})
            return target
        return index

    # ---------------------------------------------------------------- communication

    @property
    def _communication(self) -> dict[str, Any] | None:
        assert self._input is not None
        return self._input.plan.get("communication")

    def _statement(self, name: str) -> str:
        template = (self._communication or {}).get(name)
        if not template:
            return ""
        try:
            return str(expressions.render(template, self._context(Scope(results=self._results))))
        except expressions.ExpressionError as exc:
            return f"({name} unavailable: {exc})"

    async def _broadcast(self, event: str, text: str) -> None:
        """One message to every channel; a channel that keeps failing is recorded, never fails the incident."""
        assert self._input is not None and self._communication is not None
        self._comms_seq += 1
        seq = self._comms_seq
        # The key is fixed before the first attempt, so a retried send (after a worker crash) is recognisable.
        key = f"{self._input.incident_id}/{event}/{seq}"
        comms = self._communication

        async def send(channel: dict[str, Any]) -> str | None:
            try:
                await workflow.execute_activity(
                    channel["action"],
                    ActionInput(action=channel["action"], incident_id=self._input.incident_id if self._input else "",
                                step_id=f"comms:{event}:{seq}",
                                params={**channel["params"], "message": text, "event": event, "key": key}),
                    start_to_close_timeout=timedelta(seconds=comms.get("send_timeout_s") or 30),
                    retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1)),
                )
                return None
            except ActivityError as exc:
                return f"{channel['action']}: {_error_of(exc).get('message')}"

        problems = await asyncio.gather(*(send(c) for c in self._communication["channels"]))
        failed = [p for p in problems if p]
        detail: dict[str, Any] = {"event": event, "seq": seq, "channels": len(problems) - len(failed)}
        if failed:
            detail["failed"] = failed
        self._event("notification_sent" if not failed else "notification_failed", detail=detail)

    async def _status_updates(self) -> None:
        assert self._input is not None and self._communication is not None
        cadence = self._communication["cadence_s"].get(self._input.severity)
        if not cadence:
            return
        while not self._finishing:
            try:
                await workflow.wait_condition(lambda: self._finishing, timeout=timedelta(seconds=cadence))
            except builtins.TimeoutError:
                await self._broadcast("update", messages.status_update(self._summary(), self._statement("impact"),
                                                                       cadence))

    async def _stop_status_updates(self) -> None:
        self._finishing = True
        if self._cadence_task is not None:
            await self._cadence_task

    async def _request_approval(self, pending: PendingApproval, scope: Scope) -> None:
        upcoming = self._upcoming
        params: Any = None
        if upcoming and upcoming.get("params") is not None:
            try:
                params = expressions.render(upcoming["params"], self._context(scope))
            except expressions.ExpressionError:
                params = upcoming["params"]  # depends on results the approval itself produces
        text = messages.approval_request(self._summary(), pending.__dict__, upcoming, params,
                                         (self._communication or {}).get("approve_url"))
        await self._broadcast("approval_requested", text)

    async def _close_communication(self) -> None:
        if not self._communication:
            return
        await self._stop_status_updates()
        started = datetime.fromisoformat(self._started_at)
        duration = (workflow.now() - started).total_seconds()
        text = messages.closed(self._summary(), self._statement("impact"), self._statement("root_cause"), duration)
        await self._broadcast("resolved" if self._status == RESOLVED else "failed", text)

    # ---------------------------------------------------------------- roles

    @workflow.update
    def assign(self, assignment: Assignment) -> dict[str, Any]:
        changed = {k: v for k, v in (("commander", assignment.commander), ("assignee", assignment.assignee)) if v}
        self._roles.update(changed)
        self._event("assigned", detail={"by": assignment.by, **changed})
        return dict(self._roles)

    @assign.validator
    def _validate_assign(self, assignment: Assignment) -> None:
        if not assignment.by.strip():
            raise ValueError("say who assigns (--as)")
        if not (assignment.commander.strip() or assignment.assignee.strip()):
            raise ValueError("give a commander, an assignee, or both")

    @workflow.update
    def acknowledge(self, ack: Acknowledgement) -> dict[str, Any]:
        now = workflow.now()
        started = datetime.fromisoformat(self._started_at) if self._started_at else now
        self._roles.update(acknowledged_by=ack.by, acknowledged_at=now.isoformat(),
                           time_to_ack_s=round((now - started).total_seconds(), 3))
        self._event("acknowledged", detail={"by": ack.by, "time_to_ack_s": self._roles["time_to_ack_s"]})
        return dict(self._roles)

    @acknowledge.validator
    def _validate_ack(self, ack: Acknowledgement) -> None:
        if not ack.by.strip():
            raise ValueError("say who acknowledges (--as)")
        if self._roles.get("acknowledged_by"):
            raise ValueError(f"already acknowledged by {self._roles['acknowledged_by']} "
                             f"at {self._roles['acknowledged_at']}")

    # ---------------------------------------------------------------- queries

    @workflow.query
    def state(self) -> dict[str, Any]:
        return self._summary()

    @workflow.query
    def current_step(self) -> list[str]:
        return list(self._running)

    @workflow.query
    def timeline(self) -> list[dict[str, Any]]:
        return list(self._timeline)

    # ---------------------------------------------------------------- bookkeeping

    @property
    def _runbook(self) -> dict[str, Any]:
        assert self._input is not None
        return self._input.plan["runbook"]

    def _key(self, step: dict[str, Any], scope: Scope) -> str:
        return step["id"] + scope.key_suffix

    def _context(self, scope: Scope) -> dict[str, Any]:
        assert self._input is not None
        return {
            "params": self._input.params,
            "alert": self._input.alert or {},
            "steps": scope.visible_results(),
            "incident": {
                "id": self._input.incident_id,
                "severity": self._input.severity,
                "runbook": self._runbook["name"],
                "service": self._input.service,
                "dry_run": self._input.dry_run,
                "started_at": self._started_at,
                "alert_status": self._alert_status(),
                "refires": self._refires.get("count", 0),
            },
            **scope.visible_variables(),
        }

    def _event(self, kind: str, step: str | None = None, detail: dict[str, Any] | None = None) -> None:
        event: dict[str, Any] = {"at": workflow.now().isoformat(), "kind": kind}
        if step:
            event["step"] = step
        if detail:
            event["detail"] = detail
        self._timeline.append(event)
        if len(self._timeline) > MAX_TIMELINE_EVENTS:
            # Keep the start of the story and the most recent events; say how many were dropped.
            del self._timeline[100]
            self._events_dropped += 1

    def _set_status(self, status: str) -> None:
        assert self._input is not None
        self._status = status
        workflow.upsert_search_attributes([
            STATUS_ATTR.value_set(status),
            SEVERITY_ATTR.value_set(self._input.severity),
            RUNBOOK_ATTR.value_set(self._runbook["name"]),
            SERVICE_ATTR.value_set(self._input.service or ""),
        ])

    def _finish(self, status: str) -> None:
        self._finished_at = workflow.now().isoformat()
        self._event(f"incident_{status}", detail={"failure": self._failure} if self._failure else None)
        self._set_status(status)

    def _maybe_continue_as_new(self) -> None:
        assert self._input is not None
        info = workflow.info()
        if info.is_continue_as_new_suggested() or info.get_current_history_length() > self._input.history_event_limit:
            raise _ContinueAsNew()

    def _carry(self) -> dict[str, Any]:
        self._runs += 1
        self._event("continued_as_new", detail={"next_step_index": self._pc, "run": self._runs})
        return {
            "status": self._status,
            "pc": self._pc,
            "results": self._results,
            "records": self._records,
            "timeline": self._timeline,
            "events_dropped": self._events_dropped,
            "approval_log": self._approval_log,
            "started_at": self._started_at,
            "runs": self._runs,
            "alerts": self._alerts,
            "notifications": self._notifications,
            "roles": self._roles,
            "comms_seq": self._comms_seq,
            "resolved_handled": self._resolved_handled,
            "refires": self._refires,
        }

    def _restore(self, carried: dict[str, Any]) -> None:
        self._status = carried["status"]
        self._pc = carried["pc"]
        self._results = carried["results"]
        self._records = carried["records"]
        self._timeline = carried["timeline"]
        self._events_dropped = carried.get("events_dropped", 0)
        self._approval_log = carried["approval_log"]
        self._started_at = carried["started_at"]
        self._runs = carried.get("runs", 1)
        self._alerts = carried.get("alerts", {})
        self._notifications = carried.get("notifications", 0)
        self._roles = carried.get("roles", self._roles)
        self._comms_seq = carried.get("comms_seq", 0)
        self._resolved_handled = carried.get("resolved_handled", False)
        self._refires = carried.get("refires", {"count": 0, "previous_run_id": None})

    def _summary(self) -> dict[str, Any]:
        assert self._input is not None
        plan = self._input.plan
        return {
            "incident_id": self._input.incident_id,
            "status": self._status,
            "runbook": self._runbook["name"],
            "runbook_version": self._runbook.get("version"),
            "plan_hash": plan.get("hash"),
            "severity": self._input.severity,
            "service": self._input.service,
            "params": self._input.params,
            "dry_run": self._input.dry_run,
            "started_at": self._started_at,
            "finished_at": self._finished_at or None,
            "current_steps": list(self._running),
            "steps": self._records,
            "pending_approvals": [p.__dict__ for p in self._approvals.values()],
            "approvals": self._approval_log,
            "failure": self._failure,
            "runs": self._runs,
            "timeline_events": len(self._timeline) + self._events_dropped,
            "alert_status": self._alert_status(),
            "alerts": self._alerts,
            "notifications": self._notifications,
            "refires": self._refires,
            "roles": self._roles,
        }


class _StepError(Exception):
    """A step-level failure found by the interpreter itself (assertion, wait deadline, rejection)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


class _ContinueAsNew(Exception):
    pass


class _AlertsResolved(Exception):
    """A waiting step stood down because every alert resolved; unwinds to the top-level step list."""
