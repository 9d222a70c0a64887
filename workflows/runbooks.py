"""Running runbooks inside an incident: the incident's own, again on a re-fire, or another one a person asks for.

A runbook's outcome moves the incident on (mitigated, or needs attention and people are told); it never ends the
incident. Cancelling runs the incident runbook's `on_cancel` section. Incidents started before the lifecycle
use `rollback` and `finish` to end with their runbook, as they always did.
"""

from __future__ import annotations

from temporalio import workflow

from incidentctl.dsl.plan import Plan
from workflows.communication import Communicator
from workflows.context import IncidentRun, Scope
from workflows.errors import RollbackRequested, RunbookEnded, StepFailed
from workflows.interpreter import Interpreter
from workflows.lifecycle import Lifecycle, Transition, after_runbook
from workflows.model import (
    CANCELLED,
    FAILED,
    MITIGATED,
    MITIGATING,
    ROLLED_BACK,
    ROLLING_BACK,
    SUCCEEDED,
    RunbookRequest,
)
from workflows.plan_check import check_plan

PLAN_CHECKED = "runbook-plan-checked"


class Runbooks:
    def __init__(self, run: IncidentRun, interpreter: Interpreter, comms: Communicator) -> None:
        self.run = run
        self.interpreter = interpreter
        self.comms = comms
        self.lifecycle: Lifecycle | None = None  # set by the workflow: it moves the incident after a runbook

    def start_record(self, by: str) -> None:
        state, plan = self.run.state, self.run.active_plan
        now = workflow.now().isoformat()
        state.mark("mitigating_at", now)
        state.runbook_runs.append({"runbook": plan.runbook.name, "version": plan.runbook.version,
                                   "plan_hash": plan.hash or None, "started_at": now, "finished_at": None,
                                   "outcome": None, "by": by})
        self.run.event("runbook_started", detail={"runbook": plan.runbook.name, "by": by})

    async def run_again(self, request: RunbookRequest | None) -> None:
        """Run a runbook inside the open incident: another one a person asked for, or this one again."""
        run = self.run
        if request is not None and workflow.patched(PLAN_CHECKED):
            # Mitigating from now: the person's update answers while the check runs.
            previous = run.state.status
            run.set_status(MITIGATING)
            verdict = await check_plan(request.plan, request.plan_signature)
            if not verdict["ok"]:
                run.set_status(previous)
                run.event("runbook_refused", detail={"by": request.by, "reason": verdict["reason"]})
                await self.comms.tell("needs_attention", f"the runbook {request.by} asked for was refused: "
                                                         f"{verdict['reason']}")
                return
        if request is not None:
            run.active_plan, run.active_params = Plan.from_json(request.plan), request.params
        run.state.pc = 0
        self.start_record(request.by if request else "alerts")
        run.set_status(MITIGATING)
        name = run.active_plan.runbook.name
        # Another runbook's step ids may repeat this one's: its records are kept under "<runbook>/<step>".
        prefix = f"{name}/" if run.active_plan is not run.plan else f"run{len(run.state.runbook_runs)}/"
        try:
            await self.execute(Scope(results={}, key_prefix=prefix))
        finally:
            run.active_plan, run.active_params = run.plan, run.input.params

    async def execute(self, scope: Scope) -> None:
        """The active runbook from where it stands; its outcome moves the incident on (never ends it)."""
        state = self.run.state
        try:
            await self.interpreter.run_top_level(scope)
            outcome = SUCCEEDED
        except RunbookEnded as ended:
            outcome = ended.outcome
        except StepFailed as failed:
            state.failure = {"step": failed.step, **failed.error}
            outcome = FAILED
        except RollbackRequested as request:
            state.failure = {"step": request.step, **request.error}
            outcome = ROLLED_BACK if await self.rollback(scope) else FAILED
        record = state.runbook_runs[-1]
        record.update(finished_at=workflow.now().isoformat(), outcome=outcome)
        state.outcome = outcome
        self.run.event("runbook_finished", detail={"runbook": record["runbook"], "outcome": outcome,
                                                   **({"failure": state.failure} if outcome != SUCCEEDED else {})})
        status = after_runbook(state)
        reason = f"runbook {record['runbook']}: {outcome}"
        assert self.lifecycle is not None
        self.lifecycle.move(Transition(status, reason, by="runbook"))
        if status != MITIGATED:
            failure = f" ({state.failure.get('message')})" if state.failure and outcome != SUCCEEDED else ""
            await self.comms.tell("needs_attention", reason + failure)

    async def rollback(self, scope: Scope) -> bool:
        """The active runbook's rollback section; whether it completed."""
        self.run.set_status(ROLLING_BACK)
        self.run.event("rollback_started", detail={"after": self.run.state.failure})
        try:
            await self.interpreter.run_list(self.run.active_plan.rollback, scope)
        except (StepFailed, RollbackRequested, RunbookEnded) as exc:
            self.run.event("rollback_failed", detail={"error": str(exc)})
            return False
        return True

    async def cancel(self, scope: Scope) -> None:
        """A person cancelled the incident: its on_cancel section runs, then it ends as cancelled."""
        run = self.run
        run.event("cancel_requested")  # `incident_cancelled` follows once on_cancel has run (finish)
        if run.plan.on_cancel:
            try:
                await self.interpreter.run_list(run.plan.on_cancel, Scope(results={}, parent=scope))
            except (StepFailed, RollbackRequested, RunbookEnded) as exc:
                run.event("on_cancel_failed", detail={"error": str(exc)})
        self.finish(CANCELLED)
        await self.comms.close()

    def finish(self, status: str) -> None:
        state = self.run.state
        state.finished_at = workflow.now().isoformat()
        self.run.event(f"incident_{status}", detail={"failure": state.failure} if state.failure else None)
        self.run.set_status(status)
        self.run.count_end(status)
