"""Approval steps: who may decide, quorum, escalation stages and timeouts.

`decision_problem` and `apply_decision` are pure (tested without a server); the update validator refuses
with the first, so a refused vote never enters history. `run_approval` is the step itself: it waits on
durable timers and on decisions arriving through the update (or the checked signal).

An approval followed by a mutating action names what will run (`will_run`: that step, its action, its params
rendered when the approval is asked) and, once approved, that step runs with exactly those params
(`params_to_run`), not with params rendered again later, when what the diagnosis found may have moved on.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow

from incidentctl.dsl import expressions
from incidentctl.dsl.plan import Step
from workflows import metrics
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
    # The mutating action that runs once approved: {"step", "action", "params"}, or "params": None and
    # "unresolved": why, when they depend on something not known yet. None when no such step follows.
    will_run: dict[str, Any] | None = None


def next_run(upcoming: Step | None, key: str, context: dict[str, Any]) -> dict[str, Any] | None:
    """The action step `upcoming` (named `key`) as it would run now, or None when it is no action step."""
    if upcoming is None or upcoming.action is None:
        return None
    entry: dict[str, Any] = {"step": key, "action": upcoming.action}
    try:
        # A result not there yet renders as null: say so rather than show (and approve) a null.
        known = context.get("steps", {})
        not_run = sorted({str(r.path[0]) for r in expressions.references(upcoming.params)
                          if r.root == "steps" and r.path and r.path[0] not in known})
        if not_run:
            entry.update(params=None, unresolved=f"they use the result of {', '.join(not_run)}, not run yet")
        else:
            entry["params"] = expressions.render(upcoming.params or {}, context)
    except expressions.ExpressionError as exc:
        entry.update(params=None, unresolved=str(exc))
    if upcoming.when:
        entry["when"] = upcoming.when
    return entry


def will_run(approval: Step, upcoming: Step | None, key: str, context: dict[str, Any]) -> dict[str, Any] | None:
    """What an approval commits to: the mutating action right after it (not when the approval jumps away)."""
    if approval.next or approval.end or upcoming is None or upcoming.kind != "action" or not upcoming.mutates:
        return None
    return next_run(upcoming, key, context)


def freeze(state: IncidentState, pending: PendingApproval) -> None:
    """An approved `will_run` with known params becomes the params of that step's next run, and only of it."""
    entry = pending.will_run
    if pending.outcome == "approved" and entry is not None and entry.get("params") is not None:
        state.approved_params[entry["step"]] = {"approval": pending.step, "action": entry["action"],
                                                "params": entry["params"]}


def param_changes(approved: Any, now: Any) -> dict[str, Any]:
    """Top-level params whose value differs between the approved and the freshly rendered ones."""
    if not isinstance(approved, dict) or not isinstance(now, dict):
        return {"params": {"approved": approved, "now": now}}
    return {name: {"approved": approved.get(name), "now": now.get(name)}
            for name in sorted(set(approved) | set(now)) if approved.get(name) != now.get(name)}


def params_for_run(state: IncidentState, step: Step, key: str, render: Callable[[], Any]
                   ) -> tuple[Any, dict[str, Any] | None]:
    """The params of this run of action step `key`, and what to record when they are kept against a fresh render:
    the ones an approval froze for it (used once), else `render()` (the step's params rendered now)."""
    frozen = state.approved_params.pop(key, None)
    if frozen is None or frozen["action"] != step.action:
        return render(), None
    try:
        now: Any = render()
    except expressions.ExpressionError as exc:
        now = {"unresolved": str(exc)}
    if now == frozen["params"]:
        return frozen["params"], None
    return frozen["params"], {"approval": frozen["approval"], "params": frozen["params"],
                              "changes": param_changes(frozen["params"], now)}


def params_to_run(run: IncidentRun, step: Step, scope: Scope, key: str) -> Any:
    """`params_for_run` in the workflow: when rendering now would give other params, the approved ones still run
    and the timeline says what differs (`approved_params_kept`)."""
    params, kept = params_for_run(run.state, step, key,
                                  lambda: expressions.render(step.params or {}, run.expression_context(scope)))
    if kept is not None:
        run.event("approved_params_kept", key, kept)
    return params


def forget_frozen(state: IncidentState, key: str) -> None:
    """Step `key` has had its one run (or was skipped): an approval's params never outlive it."""
    state.approved_params.pop(key, None)


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


PEOPLE_CHECKED = "approval-people-checked"


def rendered_people(names: list[str], context: dict[str, Any], field_name: str) -> list[str]:
    """Approvers or groups with their templates rendered (`${{ params.approvers }}` may give a list)."""
    out: list[str] = []
    for entry in names:
        value: Any = expressions.render(entry, context) if "${{" in entry else entry
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise StepError({"type": "InvalidApprovers",
                             "message": f"{field_name} entry {entry!r} gives {value!r}, not one or more names"})
        out += [v.strip() for v in values if v.strip() not in out]
    return out


def stage_people(stage: Any, context: dict[str, Any], known_groups: dict[str, list[str]], checked: bool
                 ) -> tuple[list[str], list[str]]:
    """Who decides at one stage. `checked` (incidents started with this rule): a group the people file lacks
    is refused, where it used to let nobody in silently."""
    approvers = rendered_people(list(stage.approvers), context, "approvers")
    groups = rendered_people(list(stage.groups), context, "groups")
    unknown = [g for g in groups if g not in known_groups]
    if checked and unknown:
        raise StepError({"type": "InvalidApprovers",
                         "message": f"the approval names group(s) {', '.join(unknown)} that the people file does not "
                                    f"have (known: {', '.join(sorted(known_groups)) or 'none'})"})
    return approvers, groups


async def run_approval(run: IncidentRun, step: Step, scope: Scope, key: str, upcoming: Step | None,
                       on_requested: Any, alerts_cleared: Any, *, literal_message: bool = False) -> dict[str, Any]:
    """Wait for the decision; `on_requested(pending)` tells stakeholders, `alerts_cleared()` stands it down.
    `upcoming` is the step after this one in its list (or the step a fresh approval is for). `literal_message`:
    the message is text made by the engine (it may quote alert data), never a template."""
    spec = step.approval
    assert spec is not None
    context = run.expression_context(scope)
    message = spec.message if literal_message else expressions.render(spec.message or "", context)
    checked = run.people_checked
    if checked is None:
        checked = workflow.patched(PEOPLE_CHECKED) if workflow.in_workflow() else True
    # Every stage's people, rendered and checked now: a bad escalation list fails the step before anyone waits.
    people = [stage_people(stage, context, run.groups, checked) for stage in (spec, *spec.escalation)]
    pending = PendingApproval(step=key, approvers=list(people[0][0]), groups=list(people[0][1]),
                              required=spec.required, message=str(message), requested_at=run.now().isoformat(),
                              allow_self_approval=spec.allow_self_approval,
                              will_run=will_run(step, upcoming, scope.key(upcoming) if upcoming else "", context))
    state = run.state
    state.approvals[key] = pending
    run.set_status(WAITING_APPROVAL)
    requested: dict[str, Any] = {"message": pending.message, "approvers": pending.approvers,
                                 "groups": pending.groups, "required": pending.required}
    if pending.will_run is not None:
        requested["will_run"] = pending.will_run
    run.event("approval_requested", key, requested)
    runbook = run.active_plan.runbook.name
    metrics.count(metrics.APPROVALS_REQUESTED, runbook=runbook)
    timed_out = False
    await on_requested(pending)
    # Stage 0 is the step's own people; each escalation stage adds people once the previous one times out.
    stages: list[Any] = [spec, *spec.escalation]
    try:
        for index, stage in enumerate(stages):
            if index:
                pending.stage = index
                more, more_groups = people[index]
                pending.approvers += [a for a in more if a not in pending.approvers]
                pending.groups += [g for g in more_groups if g not in pending.groups]
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
                timed_out = True
                run.event("approval_timed_out", key, {"outcome": pending.outcome, "timeout_s": timeout})
    finally:
        state.approvals.pop(key, None)
        # Counted here so that requested minus finished stays the number waiting, cancelled incidents included.
        undecided = "superseded" if alerts_cleared() else "cancelled"
        if run.acting():  # not when the garbage collector closes an evicted incident's wait (IncidentRun.acting)
            metrics.count(metrics.APPROVALS_FINISHED, runbook=runbook, outcome="timed_out" if timed_out else (
                undecided if pending.outcome == "pending" else pending.outcome))
        # An evicted incident's wait closed by the garbage collector sets no status (set_status sees to it): the
        # incident goes on where it was when replayed.
        if not state.approvals:
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
    freeze(state, pending)
    output: dict[str, Any] = {"approved": True, "votes": pending.votes}
    if pending.will_run is not None:
        output["will_run"] = pending.will_run
    return output
