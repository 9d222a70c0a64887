"""The interpreter: runs step lists of a typed plan, one step kind at a time, with the runbook's control flow.

Every action is an activity named after it; expressions are pure; time and timers are Temporal's. The
approval and communication rooms are handed in, so this module holds only step execution and control flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

from activities.base import ActionInput
from incidentctl.dsl import allowed_changes, expressions
from incidentctl.dsl.plan import Step
from workflows import alerts, approvals, metrics
from workflows.communication import Communicator
from workflows.context import IncidentRun, Scope
from workflows.errors import (
    AlertsResolved,
    ContinueAsNewRequested,
    RollbackRequested,
    RunbookEnded,
    StepError,
    StepFailed,
    error_of,
)
from workflows.leases import Leases, fresh_approval_step, lease_key

# Activities scheduled with a summary (the step they run) from this patch on; histories before it have none.
ACTIVITY_SUMMARIES = "activity-summaries"
MAX_FOREACH_ITEMS = 500


class Interpreter:
    def __init__(self, run: IncidentRun, comms: Communicator, continue_as_new_due: Callable[[], bool]) -> None:
        self.run = run
        self.comms = comms
        self.continue_as_new_due = continue_as_new_due
        self.upcoming: Step | None = None
        self.leases = Leases(run)
        # Asked once, when the incident starts (before its admission's local activity): a patch first asked
        # after a local activity in the same workflow task did not replay (its marker was not matched).
        self._summaries = workflow.patched(ACTIVITY_SUMMARIES)
        self._kinds: dict[str, Callable[[Step, Scope, str], Awaitable[Any]]] = {
            "action": self._call_action, "notify": self._call_action, "check": self._check,
            "wait_until": self._wait_until, "sleep": self._sleep, "approval": self._approval,
            "branch": self._branch, "parallel": self._parallel, "foreach": self._foreach,
        }

    # ---------------------------------------------------------------- step lists

    async def run_top_level(self, scope: Scope) -> None:
        """The active runbook's steps from where the incident stands (`state.pc`), between each the alert
        policy (the incident's own runbook's)."""
        steps, state = self.run.active_plan.steps, self.run.state
        index = state.pc
        while index < len(steps):
            jump = alerts.apply_resolve_policy(state, self.run.plan.on_alert_resolved, steps, index,
                                               self.run.now().isoformat())
            if jump is None:
                raise RunbookEnded()
            index = state.pc = jump
            if self.continue_as_new_due():
                raise ContinueAsNewRequested()
            if index >= len(steps):
                break
            try:
                index = await self._one(steps, index, scope)
            except AlertsResolved:
                index += 1  # the policy is applied at the top of the loop
        state.pc = len(steps)

    async def run_list(self, steps: list[Step], scope: Scope) -> None:
        index = 0
        while index < len(steps):
            index = await self._one(steps, index, scope)

    async def _one(self, steps: list[Step], index: int, scope: Scope) -> int:
        """Run steps[index]; the index of the next step to run, or an exception that unwinds."""
        step = steps[index]
        self.upcoming = steps[index + 1] if index + 1 < len(steps) else None
        try:
            outcome = await self.run_step(step, scope)
        finally:
            approvals.forget_frozen(self.run.state, scope.key(step))
        if outcome == "skipped":
            return index + 1
        if outcome == "succeeded":
            if step.end:
                raise RunbookEnded(step.end_outcome or "succeeded")
            return _position(steps, step.next) if step.next else index + 1
        error = scope.results[step.id]["error"]
        key = scope.key(step)
        mode = step.on_failure.mode
        if mode == "continue":
            return index + 1
        if mode == "goto":
            self.run.event("step_goto", key, {"target": step.on_failure.target})
            return _position(steps, step.on_failure.target)
        if mode == "rollback":
            raise RollbackRequested(key, error)
        raise StepFailed(key, error)

    # ---------------------------------------------------------------- one step

    async def run_step(self, step: Step, scope: Scope) -> str:
        run, state = self.run, self.run.state
        key = scope.key(step)
        if step.when:
            try:
                should_run = expressions.condition(step.when, run.expression_context(scope))
            except expressions.ExpressionError as exc:
                return self._record_failure(step, scope, {"type": "ExpressionError", "message": str(exc)})
            if not should_run:
                scope.results[step.id] = {"status": "skipped", "output": None, "error": None}
                state.records[key] = {"status": "skipped", "kind": step.kind, "seq": len(state.records) + 1}
                run.event("step_skipped", key, {"when": step.when})
                metrics.count(metrics.STEPS_FINISHED, **metrics.step_labels(step.kind, step.action), outcome="skipped")
                return "skipped"
        state.records[key] = {"status": "running", "kind": step.kind, "seq": len(state.records) + 1,
                              "started_at": run.now().isoformat()}
        state.running.append(key)
        run.show_details()
        run.event("step_started", key, {"kind": step.kind, "action": step.action})
        metrics.count(metrics.STEPS_STARTED, **metrics.step_labels(step.kind, step.action))
        try:
            # Every kind's raw result goes through `outputs`, containers included (their body has run by then).
            output = self._outputs(step, scope, await self._execute(step, scope, key))
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                self._count_unfinished(step, cancelled=True)
                raise asyncio.CancelledError() from exc
            return self._record_failure(step, scope, error_of(exc))
        except (StepFailed, StepError) as exc:
            return self._record_failure(step, scope, exc.error)
        except expressions.ExpressionError as exc:
            return self._record_failure(step, scope, {"type": "ExpressionError", "message": str(exc)})
        except AlertsResolved:
            self._supersede(step, scope)
            raise
        except BaseException as exc:
            if run.acting():  # not a coroutine closed inside another workflow (IncidentRun.acting)
                self._count_unfinished(step, cancelled=isinstance(exc, asyncio.CancelledError | CancelledError))
            raise
        finally:
            if key in state.running:
                state.running.remove(key)
                run.show_details()
        scope.results[step.id] = {"status": "succeeded", "output": output, "error": None}
        state.records[key].update(status="succeeded", output=output, finished_at=run.now().isoformat())
        run.event("step_succeeded", key)
        metrics.count(metrics.STEPS_FINISHED, **metrics.step_labels(step.kind, step.action), outcome="succeeded")
        return "succeeded"

    async def _execute(self, step: Step, scope: Scope, key: str) -> Any:
        kind = self._kinds.get(step.kind)
        if kind is None:
            raise StepError({"type": "UnknownStepKind", "message": f"unknown step kind {step.kind!r}"})
        return await kind(step, scope, key)

    def _record_failure(self, step: Step, scope: Scope, error: dict[str, Any]) -> str:
        state, key = self.run.state, scope.key(step)
        scope.results[step.id] = {"status": "failed", "output": None, "error": error}
        record = state.records.setdefault(key, {"kind": step.kind, "seq": len(state.records) + 1})
        record.update(status="failed", error=error, finished_at=self.run.now().isoformat())
        self.run.event("step_failed", key, {"error": error})
        labels = metrics.step_labels(step.kind, step.action)
        metrics.count(metrics.STEPS_FINISHED, **labels, outcome="failed")
        metrics.count(metrics.STEP_FAILURES, **labels, error_type=str(error.get("type") or "unknown"))
        return "failed"

    @staticmethod
    def _count_unfinished(step: Step, cancelled: bool) -> None:
        """A started step left without an outcome: cancelled, or a container whose body ended the runbook or
        asked for the rollback. Counted so that started minus finished is what runs now."""
        metrics.count(metrics.STEPS_FINISHED, **metrics.step_labels(step.kind, step.action),
                      outcome="cancelled" if cancelled else "interrupted")

    def _supersede(self, step: Step, scope: Scope) -> None:
        state, key = self.run.state, scope.key(step)
        if key in state.running:
            state.running.remove(key)
        scope.results[step.id] = {"status": "superseded", "output": None, "error": None}
        state.records.setdefault(key, {"kind": step.kind, "seq": len(state.records) + 1}).update(
            status="superseded", finished_at=self.run.now().isoformat())
        self.run.event("step_superseded", key, {"reason": "all alerts resolved"})
        metrics.count(metrics.STEPS_FINISHED, **metrics.step_labels(step.kind, step.action), outcome="superseded")

    def _outputs(self, step: Step, scope: Scope, result: Any) -> Any:
        if not step.outputs:
            return result
        return expressions.render(step.outputs, {**self.run.expression_context(scope), "result": result})

    # ---------------------------------------------------------------- step kinds

    async def _call_action(self, step: Step, scope: Scope, key: str) -> Any:
        params = approvals.params_to_run(self.run, step, scope, key)
        refused = allowed_changes.step_refusal(self.run.active_plan.changes, step.lease, params)
        if refused:
            raise StepError({"type": allowed_changes.REFUSED, "message": refused})
        target = lease_key(step.lease, params) if step.lease and not self.run.input.dry_run else None
        if not target or target.endswith("/"):
            return await self._activity(step, key, params)
        return await self._under_lease(step, scope, key, target, params)

    async def _under_lease(self, step: Step, scope: Scope, key: str, target: str, params: dict[str, Any]) -> Any:
        """Run a mutating step holding its object's lease; a recent change by another incident needs a fresh
        approval first. The release tells the object what was done, for the next incident's approval."""
        target, request_id, grant = await self.leases.acquire(step, key, target, params)
        change: dict[str, Any] | None = None
        try:
            if grant.recent_changes:
                confirm, confirm_key = fresh_approval_step(self.run, step, key, target, params, grant.recent_changes)
                await self._approval(confirm, scope, confirm_key, before=step)
            change = {"outcome": "started", "approved_by": self.run.state.last_approvers()}
            result = await self._activity(step, key, params)
            change["outcome"] = "done"
            return result
        except BaseException as exc:
            if change is not None:
                change["outcome"] = f"failed: {type(exc).__name__}"
            raise
        finally:
            if change is not None:
                self.run.state.leases.append({"target": target, "step": key, "action": step.action,
                                              "outcome": change["outcome"], "at": self.run.now().isoformat()})
            if self.run.acting():  # not from another workflow, when the garbage collector closes this coroutine
                await self.leases.release(target, request_id, change)

    async def _activity(self, step: Step, key: str, params: Any) -> Any:
        inp, retry = self.run.input, step.retry
        assert step.action is not None and retry is not None and step.timeout_s is not None
        return await workflow.execute_activity(
            step.action,
            ActionInput(action=step.action, params=params, incident_id=inp.incident_id, step_id=key,
                        dry_run=inp.dry_run and step.mutates,
                        changes=self.run.active_plan.changes if step.mutates else None),
            # The Temporal UI names the activity by its step; the summary is part of the scheduling command.
            summary=f"step {key}: {step.action}" if self._summaries else None,
            start_to_close_timeout=timedelta(seconds=step.timeout_s),
            heartbeat_timeout=timedelta(seconds=step.heartbeat_s) if step.heartbeat_s else None,
            retry_policy=RetryPolicy(
                maximum_attempts=retry.max_attempts,
                initial_interval=timedelta(seconds=retry.initial_interval_s),
                backoff_coefficient=retry.backoff,
                maximum_interval=timedelta(seconds=retry.max_interval_s),
                non_retryable_error_types=list(retry.non_retryable_errors),
            ),
        )

    async def _check(self, step: Step, scope: Scope, key: str) -> Any:
        result = await self._call_action(step, scope, key)
        context = {**self.run.expression_context(scope), "result": result}
        if not expressions.condition(step.assert_ or "true", context):
            text = expressions.render(step.message, context) if step.message else None
            raise StepError({"type": "CheckFailed", "message": text or f"assertion failed: {step.assert_}",
                             "result": result})
        return result

    async def _wait_until(self, step: Step, scope: Scope, key: str) -> Any:
        assert step.deadline_s is not None and step.interval_s is not None
        deadline = self.run.now() + timedelta(seconds=step.deadline_s)
        interval = timedelta(seconds=step.interval_s)
        polls = 0
        while True:
            result = await self._call_action(step, scope, key)
            polls += 1
            if expressions.condition(step.until or "true", {**self.run.expression_context(scope), "result": result}):
                return {**result, "polls": polls} if isinstance(result, dict) else result
            if self.run.now() + interval > deadline:
                raise StepError({"type": "WaitTimeout", "result": result,
                                 "message": f"condition {step.until!r} still false after {polls} polls "
                                            f"({step.deadline_s}s deadline)"})
            await workflow.sleep(interval)

    async def _sleep(self, step: Step, scope: Scope, key: str) -> Any:
        await workflow.sleep(timedelta(seconds=step.duration_s or 0))
        return {"slept_s": step.duration_s}

    async def _approval(self, step: Step, scope: Scope, key: str, before: Step | None = None) -> Any:
        """An approval step, or (`before`) the fresh approval a mutating step needs before it runs."""
        upcoming = before or self.upcoming
        policy = self.run.plan.on_alert_resolved

        async def tell(pending: Any) -> None:
            await self.comms.request_approval(pending, upcoming, scope)

        return await approvals.run_approval(self.run, step, scope, key, upcoming, tell,
                                            lambda: alerts.alerts_cleared(self.run.state, policy),
                                            literal_message=bool(before))

    async def _branch(self, step: Step, scope: Scope, key: str) -> Any:
        context = self.run.expression_context(scope)
        for index, case in enumerate(step.cases or []):
            if expressions.condition(case.when, context):
                self.run.event("branch_taken", key, {"case": index, "when": case.when})
                await self.run_list(case.steps, scope)
                return {"case": index, "when": case.when}
        if step.default is not None:
            self.run.event("branch_taken", key, {"case": "default"})
            await self.run_list(step.default, scope)
            return {"case": "default"}
        return {"case": None}

    async def _parallel(self, step: Step, scope: Scope, key: str) -> Any:
        branches = step.branches or []
        tasks = [asyncio.ensure_future(self.run_list(b.steps, scope)) for b in branches]
        if step.fail_fast:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.exception() for t in done):
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        for exc in errors:
            if isinstance(exc, RollbackRequested | RunbookEnded | AlertsResolved):
                raise exc
        failed = [b.name for b, o in zip(branches, outcomes, strict=True) if isinstance(o, BaseException)]
        if failed:
            first = next(e for e in errors if not isinstance(e, asyncio.CancelledError | CancelledError))
            raise StepError({"type": "ParallelBranchFailed", "branches": failed,
                             "message": f"branches failed: {', '.join(failed)}: {first}"})
        return {"branches": [b.name for b in branches]}

    async def _foreach(self, step: Step, scope: Scope, key: str) -> Any:
        items = expressions.evaluate(step.items or "[]", self.run.expression_context(scope))
        if not isinstance(items, list):
            raise StepError({"type": "ForeachNotAList",
                             "message": f"foreach items must be a list, got {type(items).__name__}"})
        if len(items) > MAX_FOREACH_ITEMS:
            raise StepError({"type": "ForeachTooLarge",
                             "message": f"{len(items)} items is over the limit of {MAX_FOREACH_ITEMS}"})
        variable, body = step.as_ or "item", step.steps or []
        concurrency = max(1, step.concurrency)
        outputs: list[Any] = [None] * len(items)

        async def iteration(i: int) -> None:
            child = scope.child({variable: items[i], "loop": {"index": i, "length": len(items)}}, f"[{i}]")
            await self.run_list(body, child)
            outputs[i] = {sid: r.get("output") for sid, r in child.results.items()}

        for start in range(0, len(items), concurrency):
            await asyncio.gather(*(iteration(i) for i in range(start, min(start + concurrency, len(items)))))
        return {"items": len(items), "iterations": outputs}


def _position(steps: list[Step], step_id: str | None) -> int:
    return next(i for i, s in enumerate(steps) if s.id == step_id)
