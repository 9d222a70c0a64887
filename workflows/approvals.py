"""Approval steps: who may decide, quorum, escalation stages and timeouts.

`decision_problem` and `apply_decision` are pure (tested without a server); the update validator refuses
with the first, so a refused vote never enters history. `run_approval` is the step itself: it waits on
durable timers and on decisions arriving through the update (or the checked signal).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow

from incidentctl.dsl import expressions
from incidentctl.dsl.plan import Step
from workflows.context import IncidentRun, Scope
from workflows.errors import AlertsResolved, StepError
from workflows.model import RUNNING, WAITING_APPROVAL, ApprovalDecision, ApprovalReceipt
from workflows.state import IncidentState


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


def decision_problem(approvals: dict[str, PendingApproval], decision: ApprovalDecision,
                     groups: dict[str, list[str]], started_by: str) -> tuple[PendingApproval | None, str | None]:
    """Why a decision must be refused, or the approval it applies to."""
    if not isinstance(decision.approver, str) or not decision.approver.strip():
        return None, "an approver name is required"
    if not approvals:
        return None, "no approval is waiting in this incident"
    if decision.step:
        matches = [p for k, p in approvals.items() if k == decision.step or k.split("[")[0] == decision.step]
        if not matches:
            waiting = ", ".join(approvals)
            return None, f"step {decision.step!r} is not waiting for approval (waiting: {waiting})"
        if len(matches) > 1:
            names = ", ".join(p.step for p in matches)
            return None, f"step {decision.step!r} has several approvals waiting: name one of {names}"
        pending = matches[0]
    elif len(approvals) == 1:
        pending = next(iter(approvals.values()))
    else:
        return None, f"several approvals are waiting ({', '.join(approvals)}): name the step"
    allowed = set(pending.approvers)
    for group in pending.groups:
        allowed.update(groups.get(group, []))
    if (pending.approvers or pending.groups) and decision.approver not in allowed:
        return None, f"{decision.approver!r} may not approve step {pending.step!r}"
    if decision.approve and not pending.allow_self_approval and started_by and decision.approver == started_by:
        return None, (f"{decision.approver!r} started this incident and may not approve its own step "
                      f"{pending.step!r} (the runbook does not set allow_self_approval)")
    if any(v["approver"] == decision.approver for v in pending.votes):
        return None, f"{decision.approver!r} has already voted on step {pending.step!r}"
    return pending, None


def apply_decision(state: IncidentState, pending: PendingApproval, decision: ApprovalDecision, now: str
                   ) -> ApprovalReceipt:
    vote = {"approver": decision.approver, "approve": decision.approve, "comment": decision.comment, "at": now}
    pending.votes.append(vote)
    approvals = sum(1 for v in pending.votes if v["approve"])
    if not decision.approve:
        pending.outcome = "rejected"
    elif approvals >= pending.required:
        pending.outcome = "approved"
    state.approval_log.append({"step": pending.step, **vote})
    state.event(now, "approval_decided", pending.step, {**vote, "outcome": pending.outcome})
    return ApprovalReceipt(step=pending.step, approver=decision.approver, approve=decision.approve,
                           approvals=approvals, required=pending.required, outcome=pending.outcome)


async def run_approval(run: IncidentRun, step: Step, scope: Scope, key: str, on_requested: Any,
                       alerts_cleared: Any, *, literal_message: bool = False) -> dict[str, Any]:
    """Wait for the decision; `on_requested(pending)` tells stakeholders, `alerts_cleared()` stands it down.
    `literal_message`: the message is text made by the engine (it may quote alert data), never a template."""
    spec = step.approval
    assert spec is not None
    message = spec.message if literal_message else expressions.render(spec.message or "",
                                                                      run.expression_context(scope))
    pending = PendingApproval(step=key, approvers=list(spec.approvers), groups=list(spec.groups),
                              required=spec.required, message=str(message), requested_at=run.now().isoformat(),
                              allow_self_approval=spec.allow_self_approval)
    state = run.state
    state.approvals[key] = pending
    run.set_status(WAITING_APPROVAL)
    run.event("approval_requested", key, {"message": pending.message, "approvers": pending.approvers,
                                          "groups": pending.groups, "required": pending.required})
    await on_requested(pending)
    # Stage 0 is the step's own people; each escalation stage adds people once the previous one times out.
    stages: list[Any] = [spec, *spec.escalation]
    try:
        for index, stage in enumerate(stages):
            if index:
                pending.stage = index
                pending.approvers += [a for a in stage.approvers if a not in pending.approvers]
                pending.groups += [g for g in stage.groups if g not in pending.groups]
                run.event("approval_escalated", key, {"stage": index, "approvers": pending.approvers,
                                                      "groups": pending.groups})
            timeout = stage.timeout_s
            pending.deadline = (run.now() + timedelta(seconds=timeout)).isoformat() if timeout else None
            try:
                await workflow.wait_condition(lambda: pending.outcome != "pending" or alerts_cleared(),
                                              timeout=timedelta(seconds=timeout) if timeout else None)
                break
            except builtins.TimeoutError:
                if index + 1 < len(stages):
                    continue
                pending.outcome = "approved" if spec.on_timeout == "approve" else "rejected"
                run.event("approval_timed_out", key, {"outcome": pending.outcome, "timeout_s": timeout})
    finally:
        state.approvals.pop(key, None)
        # A worker that evicts a waiting incident from its cache closes this coroutine outside the workflow's
        # event loop: there is no status to set then (the incident goes on where it was when replayed).
        if not state.approvals and workflow.in_workflow():
            run.set_status(RUNNING)
    if pending.outcome == "pending":
        # Nobody decided and the alerts cleared: the runbook's on_alert_resolved policy takes over.
        pending.outcome = "superseded"
        run.event("approval_superseded", key, {"reason": "all alerts resolved while waiting"})
        raise AlertsResolved()
    if pending.outcome != "approved":
        rejecters = [v for v in pending.votes if not v["approve"]]
        reason = (f"rejected by {rejecters[0]['approver']}: {rejecters[0]['comment']}".rstrip(": ")
                  if rejecters else "approval timed out")
        raise StepError({"type": "ApprovalRejected", "message": reason, "votes": pending.votes})
    return {"approved": True, "votes": pending.votes}
