"""How control leaves a step early: failures, rollback, the end of the runbook, continue-as-new, alerts clearing."""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError


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
    """A step with `end` succeeded: the runbook is finished, wherever that step was nested. `outcome` is
    "succeeded", or "needs_attention" for `end: needs_attention` (the runbook hands the incident to people)."""

    def __init__(self, outcome: str = "succeeded") -> None:
        super().__init__(outcome)
        self.outcome = outcome


class StepError(Exception):
    """A step-level failure found by the interpreter itself (assertion, wait deadline, rejection)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


class ContinueAsNewRequested(Exception):
    """Between top-level steps, history is long enough to start a fresh run carrying the state."""


class AlertsResolved(Exception):
    """A waiting step stood down because every alert resolved; unwinds to the top-level step list."""


def error_of(exc: BaseException) -> dict[str, Any]:
    """The innermost meaningful failure of an activity error, as data for outputs and the timeline."""
    cause: BaseException | None = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return {"type": cause.type or "ApplicationError", "message": cause.message}
    if isinstance(cause, TimeoutError):
        return {"type": "Timeout", "message": f"timed out ({cause.type.name.lower() if cause.type else 'timeout'})"}
    if isinstance(cause, StepFailed | StepError):
        return cause.error
    return {"type": type(cause).__name__, "message": str(cause)}
