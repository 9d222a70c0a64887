"""The incident after (and around) its runbook: mitigated or needs attention, monitoring, resolved, closed.

An incident is open until a person closes it (docs/lifecycle.md). The rules that decide where it goes next are
pure functions over IncidentState (`next_transition`, `command_problem`), tested without a server; `Lifecycle`
runs them on durable timers (the quiet window, the reopen window) and on the people's commands that arrive
through the workflow's updates.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

from incidentctl.dsl.plan import REVIEW_REQUIRED, Resolve
from workflows.context import IncidentRun
from workflows.errors import ContinueAsNewRequested
from workflows.model import (
    CANCELLED,
    CLOSED,
    MITIGATED,
    MITIGATING,
    MONITORING,
    NEEDS_ATTENTION,
    RESOLVED,
    ROLLING_BACK,
    SUCCEEDED,
    WAITING_APPROVAL,
    Closure,
    Reopening,
    Resolution,
    RunbookRequest,
)
from workflows.state import IncidentState

RUNBOOK_RUNNING = (MITIGATING, WAITING_APPROVAL, ROLLING_BACK)
FINAL = (CLOSED, CANCELLED)
HANDS_OVER = "refire-hands-over"


@dataclass(frozen=True)
class Transition:
    status: str
    reason: str
    by: str = "incidentctl"


def requirement(state: IncidentState, resolve: Resolve) -> str:
    """What resolves this incident: its alerts, its runbook, or a person."""
    return resolve.requires or ("alerts" if state.alerts else "runbook")


def after_runbook(state: IncidentState) -> str:
    return MITIGATED if state.outcome == SUCCEEDED else NEEDS_ATTENTION


def next_transition(state: IncidentState, resolve: Resolve, now: datetime) -> Transition | None:
    """Where the incident goes by itself, now: alerts cleared, an alert firing again, a window over."""
    status, needs = state.status, requirement(state, resolve)
    alert_status = state.alert_status()
    if status in (MITIGATED, NEEDS_ATTENTION):
        if needs == "alerts" and alert_status == "resolved":
            return Transition(MONITORING, "every alert resolved")
        if needs == "runbook" and status == MITIGATED:
            return Transition(RESOLVED, "the runbook succeeded", by="runbook")
    if status == MONITORING:
        if alert_status == "firing":
            return Transition(after_runbook(state), "an alert fired again while monitoring")
        if state.quiet_until and now >= datetime.fromisoformat(state.quiet_until):
            return Transition(RESOLVED, f"every alert stayed resolved for {resolve.quiet_s(state.severity):g}s",
                              by="alerts")
    return None


def next_deadline(state: IncidentState) -> datetime | None:
    """The durable timer the lifecycle waits on in this status, if any."""
    if state.status == MONITORING and state.quiet_until:
        return datetime.fromisoformat(state.quiet_until)
    return None


def hands_over(state: IncidentState, now: datetime) -> bool:
    """A re-fire after the reopen window of a resolved incident that needs nothing more from people (no review
    due): it is closed by incidentctl and the re-fire starts a new incident, linked to it. A SEV1/SEV2 incident
    whose review is not complete is not over: the re-fire re-opens it as one inside the window would."""
    return (state.status == RESOLVED and state.refire_pending and bool(state.reopen_until)
            and now >= datetime.fromisoformat(state.reopen_until or "")
            and (state.severity not in REVIEW_REQUIRED or bool(state.review.get("completed_at"))))


def command_problem(state: IncidentState, command: Any) -> str | None:
    """Why a person's command must be refused now, or None."""
    by = getattr(command, "by", "")
    if not isinstance(by, str) or not by.strip():
        return "say who you are (--as)"
    status = state.status
    if status in FINAL:
        return f"the incident is {status}"
    if isinstance(command, Resolution):
        if status in RUNBOOK_RUNNING:
            return f"a runbook is running ({status}): let it finish, or cancel the incident"
        if status == RESOLVED:
            return f"already resolved by {(state.resolution or {}).get('by')} at {(state.resolution or {}).get('at')}"
    if isinstance(command, Reopening) and status != RESOLVED:
        return f"only a resolved incident can be re-opened (it is {status})"
    if isinstance(command, Closure):
        if status != RESOLVED:
            return f"only a resolved incident can be closed (it is {status}): resolve it first"
        if state.severity in REVIEW_REQUIRED and not state.review.get("completed_at") and not command.no_review:
            return (f"a {state.severity} incident is closed after its review: complete it with "
                    "`incidentctl incident review ID --set completed=true`, or close with --no-review")
    if isinstance(command, RunbookRequest):
        if status in RUNBOOK_RUNNING:
            return f"a runbook is already running ({status})"
        if not isinstance(command.plan, dict) or not command.plan.get("runbook"):
            return "the request carries no compiled plan"
    return None


class Lifecycle:
    """Runs an incident between and after its runbooks, until it is closed."""

    def __init__(self, run: IncidentRun, run_runbook: Callable[[RunbookRequest | None], Awaitable[None]],
                 tell: Callable[[str, str], Awaitable[None]], continue_as_new_due: Callable[[], bool]) -> None:
        self.run = run
        self.run_runbook = run_runbook
        self.tell = tell
        self.continue_as_new_due = continue_as_new_due
        self.commands: deque[tuple[int, Any]] = deque()
        self.carried_out: dict[int, str] = {}  # command number -> what became of it, for the waiting update
        self._numbers = 0

    @property
    def state(self) -> IncidentState:
        return self.run.state

    def enqueue(self, command: Any) -> int:
        """A validated command for the main loop; its number, to wait for `carried_out[number]`."""
        self._numbers += 1
        self.commands.append((self._numbers, command))
        return self._numbers

    def move(self, transition: Transition) -> None:
        state, now = self.state, self.run.now()
        previous = state.status
        state.mark(f"{transition.status}_at", now.isoformat())
        if transition.status == MONITORING:
            quiet = self.run.plan.resolve.quiet_s(state.severity)
            state.quiet_until = (now + timedelta(seconds=quiet)).isoformat()
        elif previous == MONITORING:
            state.quiet_until = None
        if transition.status == RESOLVED:
            state.resolution = state.resolution or {"at": now.isoformat(), "by": transition.by,
                                                    "summary": transition.reason}
            state.reopen_until = (now + timedelta(seconds=self.run.plan.resolve.reopen_window_s)).isoformat()
        self.run.event("status_changed", detail={"from": previous, "to": transition.status,
                                                 "reason": transition.reason, "by": transition.by})
        self.run.set_status(transition.status)
        if transition.status in FINAL:
            self.run.count_end(transition.status)

    async def serve(self) -> None:
        """Until closed: apply automatic transitions, then wait for a command, an alert or a timer."""
        state = self.state
        while state.status not in FINAL:
            transition = next_transition(state, self.run.plan.resolve, self.run.now())
            if transition is not None:
                self.move(transition)
                if transition.status == RESOLVED:
                    await self.tell("resolved", transition.reason)
                continue
            if self.commands:
                number, command = self.commands.popleft()
                await self.handle(number, command)
                continue
            if state.refire_pending:
                await self.refire()
                continue
            if self.continue_as_new_due():
                raise ContinueAsNewRequested()
            deadline = next_deadline(state)
            timeout = max(deadline - self.run.now(), timedelta(0)) if deadline else None
            seen = (state.alert_status(), state.refire_pending)

            def woken(seen: tuple[str | None, bool] = seen) -> bool:
                return (bool(self.commands) or (state.alert_status(), state.refire_pending) != seen
                        or self.continue_as_new_due())

            try:
                await workflow.wait_condition(woken, timeout=timeout)
            except TimeoutError:
                pass  # the deadline passed: next_transition sees it

    async def handle(self, number: int, command: Any) -> None:
        state, now = self.state, self.run.now().isoformat()
        problem = command_problem(state, command)
        if problem:  # the state moved on since the update was accepted
            self.run.event("command_refused", detail={"command": type(command).__name__, "by": command.by,
                                                      "reason": problem})
            self.carried_out[number] = f"refused: {problem}"
            return
        # Said before a runbook it starts runs: the person's update answers when the command took effect.
        self.carried_out[number] = "done"
        if isinstance(command, Resolution):
            state.resolution = {"at": now, "by": command.by, "summary": command.summary}
            self.move(Transition(RESOLVED, command.summary or "resolved by a person", by=command.by))
            await self.tell("resolved", command.summary or f"resolved by {command.by}")
        elif isinstance(command, Reopening):
            self.reopen(command.by, command.reason or "re-opened by a person")
        elif isinstance(command, Closure):
            state.closed_by = command.by
            self.move(Transition(CLOSED, command.reason or "closed", by=command.by))
            self.run.event("incident_closed", detail={"by": command.by, "review": bool(state.review.get(
                "completed_at")), **({"reason": command.reason} if command.reason else {})})
        elif isinstance(command, RunbookRequest):
            await self.run_runbook(command)

    def reopen(self, by: str, reason: str) -> None:
        state = self.state
        state.resolution, state.reopen_until = None, None
        state.times["resolved_at"] = None
        self.run.event("reopened", detail={"by": by, "reason": reason})
        self.move(Transition(NEEDS_ATTENTION, reason, by=by))

    async def refire(self) -> None:
        """An alert of this incident fired again after the incident resolved."""
        state = self.state
        # Patched: an incident that resolved under earlier code keeps waiting for a person, as it did then.
        if hands_over(state, self.run.now()) and workflow.patched(HANDS_OVER):
            state.refire_pending = False
            state.closed_by = "incidentctl"
            reason = "an alert fired again after the reopen window: a new incident takes over"
            self.move(Transition(CLOSED, reason))
            self.run.event("incident_closed", detail={"by": "incidentctl", "review": bool(state.review.get(
                "completed_at")), "reason": reason})
            return
        state.refire_pending = False
        within = state.reopen_until and self.run.now() < datetime.fromisoformat(state.reopen_until)
        if state.status != RESOLVED:
            return  # still being handled: the alert is counted on it
        reason = f"an alert fired again within the reopen window (on_refire: {self.run.plan.resolve.on_refire})"
        if not within:
            self.run.event("refired_after_window", detail={"reopen_until": state.reopen_until})
            if not workflow.patched(HANDS_OVER):
                await self.tell("needs_attention", "an alert fired again after the reopen window; complete the "
                                                   "review and close this incident to let it start a new one")
                return
            # Its review is still due (SEV1/SEV2): the incident is not over, and the recurrence is part of it.
            reason = "an alert fired again after the reopen window, before the review was completed"
        policy = self.run.plan.resolve.on_refire
        self.reopen("alerts", reason)
        if policy == "rerun":
            await self.run_runbook(None)
        else:
            await self.tell("needs_attention", reason)
