"""An approval names exactly what will run, and that runs: the pure parts, without a server.

`will_run` is what the approval shows (the mutating action after it, params rendered when asked), `freeze` keeps
the approved params in the incident state, `params_for_run` hands them to that step's next run once. The real
wire (dev server, simulated cluster, worker) is in tests/test_k8s_runbooks.py.
"""

from __future__ import annotations

from typing import Any

from incidentctl.dsl.plan import Step
from incidentctl.library import compile_file, compile_text
from incidentctl.output import incident_report
from tests.runbook_run import RUNBOOKS
from workflows import messages
from workflows.approvals import PendingApproval, forget_frozen, freeze, params_for_run, will_run
from workflows.state import IncidentState

NOW = "2026-01-01T00:00:00+00:00"
DIAGNOSED = {"owner": {"status": "succeeded", "output": {"name": "cart"}},
             "changes": {"status": "succeeded", "output": {"from_revision": 2, "to_revision": 1}}}


def crash_loop_steps() -> dict[str, Step]:
    plan = compile_file(RUNBOOKS / "k8s-pod-crashlooping.yaml")
    remedy = next(s for s in plan.steps if s.id == "remedy")
    assert remedy.cases is not None
    return {s.id: s for s in remedy.cases[0].steps}


def context(results: dict[str, Any]) -> dict[str, Any]:
    return {"params": {"namespace": "shop", "context": "sim"}, "steps": results}


def approved(will: dict[str, Any] | None) -> PendingApproval:
    pending = PendingApproval("approve_rollback", [], ["sre"], 1, "roll back?", NOW, will_run=will)
    pending.outcome = "approved"
    return pending


def test_the_crash_loop_approval_names_the_rollback_with_both_revisions() -> None:
    steps = crash_loop_steps()
    will = will_run(steps["approve_rollback"], steps["rollback"], "rollback", context(DIAGNOSED))
    assert will == {"step": "rollback", "action": "k8s.rollout_undo",
                    "params": {"namespace": "shop", "deployment": "cart", "context": "sim",
                               "to_revision": 1, "expect_revision": 2}}


def test_params_that_need_a_result_not_there_yet_are_unresolved_not_null() -> None:
    steps = crash_loop_steps()
    will = will_run(steps["approve_rollback"], steps["rollback"], "rollback", context({"owner": DIAGNOSED["owner"]}))
    assert will == {"step": "rollback", "action": "k8s.rollout_undo", "params": None,
                    "unresolved": "they use the result of changes, not run yet"}
    state = IncidentState()
    freeze(state, approved(will))
    assert state.approved_params == {}, "nothing unresolved is frozen: the step renders its params when it runs"


def test_only_a_mutating_action_right_after_the_approval_is_named() -> None:
    steps = crash_loop_steps()
    # verify_rollout (k8s.wait_rollout) reads, it does not change anything.
    assert will_run(steps["approve_rollback"], steps["verify_rollout"], "verify_rollout", context(DIAGNOSED)) is None
    assert will_run(steps["approve_rollback"], None, "", context(DIAGNOSED)) is None
    jumping = Step(id="gate", kind="approval", next="elsewhere")
    assert will_run(jumping, steps["rollback"], "rollback", context(DIAGNOSED)) is None


def test_approved_params_run_once_even_when_a_fresh_render_differs() -> None:
    steps = crash_loop_steps()
    rollback = steps["rollback"]
    state = IncidentState()
    freeze(state, approved(will_run(steps["approve_rollback"], rollback, "rollback", context(DIAGNOSED))))
    frozen = state.approved_params["rollback"]["params"]
    assert state.carry()["approved_params"]["rollback"]["approval"] == "approve_rollback", "continue-as-new keeps it"

    moved = {**frozen, "to_revision": 2, "expect_revision": 3}
    params, kept = params_for_run(state, rollback, "rollback", lambda: moved)
    assert params == frozen
    assert kept == {"approval": "approve_rollback", "params": frozen,
                    "changes": {"expect_revision": {"approved": 2, "now": 3}, "to_revision": {"approved": 1, "now": 2}}}
    # Only that one run: the next run of the step renders its params again.
    assert params_for_run(state, rollback, "rollback", lambda: moved) == (moved, None)


def test_an_unchanged_render_records_nothing_and_a_skipped_step_drops_the_freeze() -> None:
    steps = crash_loop_steps()
    state = IncidentState()
    will = will_run(steps["approve_rollback"], steps["rollback"], "rollback", context(DIAGNOSED))
    assert will is not None
    freeze(state, approved(will))
    assert params_for_run(state, steps["rollback"], "rollback", lambda: dict(will["params"])) == (will["params"], None)
    freeze(state, approved(will))
    forget_frozen(state, "rollback")
    assert state.approved_params == {}
    rejected = approved(will)
    rejected.outcome = "rejected"
    freeze(state, rejected)
    assert state.approved_params == {}


def test_frozen_params_apply_only_to_the_action_they_were_approved_for() -> None:
    state = IncidentState(approved_params={"fix": {"approval": "gate", "action": "k8s.scale", "params": {"n": 1}}})
    other = compile_text("name: x\nversion: 1\nsteps:\n  - id: fix\n    action: util.echo\n"
                         "    params: {message: hi}\n", "x.yaml").steps[0]
    assert params_for_run(state, other, "fix", lambda: {"message": "hi"}) == ({"message": "hi"}, None)


def test_people_see_what_will_run_in_the_message_show_and_pending() -> None:
    will = {"step": "rollback", "action": "k8s.rollout_undo", "params": {"to_revision": 1, "expect_revision": 2}}
    pending = approved(will).__dict__ | {"outcome": "pending"}
    state = {"incident_id": "inc-1", "severity": "SEV2", "runbook": "k8s-pod-crashlooping", "service": "shop/cart",
             "steps": {}, "roles": {}, "pending_approvals": [pending], "status": "waiting_approval"}
    text = messages.approval_request(state, pending, will, None)
    assert ('If approved, next: rollback runs k8s.rollout_undo with {"expect_revision": 2, "to_revision": 1} '
            "(exactly these params: the approval fixes them)") in text
    shown = incident_report(state)
    assert 'if approved, runs: rollback runs k8s.rollout_undo with {"expect_revision": 2, "to_revision": 1}' in shown

    unknown = {"step": "rollback", "action": "k8s.rollout_undo", "params": None, "unresolved": "not run yet"}
    text = messages.approval_request(state, {**pending, "will_run": unknown}, unknown, None)
    assert "If approved, next: rollback runs k8s.rollout_undo with params not known yet (not run yet)" in text
    assert "exactly" not in text
