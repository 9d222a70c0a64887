"""The interpreter's pure rooms without a server: state carry/restore/summary, alert bookkeeping, approval rules."""

from __future__ import annotations

from incidentctl.dsl.plan import AlertPolicy, Plan
from workflows.alerts import apply_resolve_policy, notification_problem, receipt_counts, record_notification
from workflows.approvals import PendingApproval, apply_decision, decision_problem
from workflows.model import AlertNotification, ApprovalDecision
from workflows.state import MAX_TIMELINE_EVENTS, TIMELINE_HEAD, IncidentState

NOW = "2026-12-01T10:00:00+00:00"


def test_carry_restore_round_trip_keeps_everything_but_what_is_running() -> None:
    state = IncidentState(pc=3, results={"a": {"status": "succeeded"}}, runs=2, comms_seq=4,
                          roles={"commander": "dana"}, failure={"step": "x"})
    state.event(NOW, "incident_started")
    state.running.append("b")
    state.approvals["gate"] = PendingApproval("gate", ["alice"], [], 1, "go?", NOW)
    carried = state.carry()
    assert "running" not in carried and "approvals" not in carried
    fresh = IncidentState(roles={"commander": "from-input"})
    fresh.restore(carried)
    assert fresh.carry() == carried
    assert fresh.running == [] and fresh.approvals == {}


def test_restoring_an_older_carried_state_keeps_fresh_defaults_for_new_fields() -> None:
    older = {"status": "running", "pc": 2, "results": {}, "records": {}, "timeline": [], "approval_log": [],
             "started_at": NOW}  # what a run of earlier code carried: no roles, refires, alerts...
    state = IncidentState(roles={"commander": "owner"})
    state.restore(older)
    assert state.pc == 2 and state.roles == {"commander": "owner"}
    assert state.refires == {"count": 0, "previous_run_id": None} and state.alerts == {}


def test_timeline_keeps_its_head_and_tail_and_counts_what_it_dropped() -> None:
    state = IncidentState()
    for i in range(MAX_TIMELINE_EVENTS + 5):
        state.event(NOW, f"e{i}")
    assert len(state.timeline) == MAX_TIMELINE_EVENTS and state.events_dropped == 5
    assert state.timeline[TIMELINE_HEAD - 1]["kind"] == f"e{TIMELINE_HEAD - 1}"
    assert state.timeline[-1]["kind"] == f"e{MAX_TIMELINE_EVENTS + 4}"
    assert state.summary({})["timeline_events"] == MAX_TIMELINE_EVENTS + 5


def alert(fingerprint: str, status: str = "firing") -> dict:
    return {"fingerprint": fingerprint, "status": status, "labels": {"alertname": "A", "pod": fingerprint}}


def test_repeats_are_counted_and_changes_of_status_are_story_events() -> None:
    state, policy = IncidentState(), AlertPolicy(mode="finish")
    assert record_notification(state, AlertNotification([alert("a"), alert("b")]), NOW, policy) == 2
    assert record_notification(state, AlertNotification([alert("a")]), NOW, policy) == 0
    assert record_notification(state, AlertNotification([alert("a", "resolved"), alert("b", "resolved")]), NOW,
                               policy) == 0
    assert record_notification(state, AlertNotification([alert("a")]), NOW, policy) == 0
    kinds = [e["kind"] for e in state.timeline]
    assert kinds == ["alert_firing", "alert_firing", "alert_resolved", "alert_resolved", "alerts_all_resolved",
                     "alert_firing"]
    assert state.alerts["a"]["notifications"] == 4 and state.alerts["a"]["refired"] == 1
    assert receipt_counts(state) == {"notifications": 4, "firing": 1, "resolved": 1}


def test_resolve_policy_applies_once_between_top_level_steps() -> None:
    plan = Plan.from_json({"runbook": {"name": "p", "version": "1"},
                           "steps": [{"id": "diagnose", "kind": "action"}, {"id": "fix", "kind": "action"},
                                     {"id": "verify", "kind": "action"}]})
    state, goto = IncidentState(), AlertPolicy(mode="goto", target="verify")
    record_notification(state, AlertNotification([alert("a")]), NOW, goto)
    assert apply_resolve_policy(state, goto, plan.steps, 1, NOW) == 1, "still firing: carry on"
    record_notification(state, AlertNotification([alert("a", "resolved")]), NOW, goto)
    assert apply_resolve_policy(state, goto, plan.steps, 1, NOW) == 2
    assert apply_resolve_policy(state, goto, plan.steps, 1, NOW) == 1, "applied once"
    finished = IncidentState(alerts={"a": {"status": "resolved"}})
    assert apply_resolve_policy(finished, AlertPolicy(mode="finish"), plan.steps, 0, NOW) is None


def test_notifications_without_fingerprints_or_with_unknown_status_are_refused() -> None:
    assert notification_problem(AlertNotification([])) == "a notification needs at least one alert"
    assert notification_problem(AlertNotification([{"status": "firing"}])) == "every alert needs a fingerprint"
    assert "not 'weird'" in str(notification_problem(AlertNotification([{"fingerprint": "f", "status": "weird"}])))


def pending(step: str = "gate", groups: tuple[str, ...] = ()) -> PendingApproval:
    return PendingApproval(step, approvers=["alice", "bob"], groups=list(groups), required=2, message="go?",
                           requested_at=NOW)


def test_decision_rules() -> None:
    groups = {"sre": ["carol"]}
    waiting = {"gate": pending(groups=("sre",))}

    def problem(approver: str, approve: bool = True, step: str = "", started_by: str = "") -> str | None:
        return decision_problem(waiting, ApprovalDecision(approver, approve, step), groups, started_by)[1]

    assert problem("mallory") == "'mallory' may not approve step 'gate'"
    assert problem("carol") is None, "a member of an approving group"
    assert problem("alice", started_by="alice").startswith("'alice' started this incident")
    assert problem("alice", approve=False, started_by="alice") is None, "rejecting your own incident is allowed"
    assert problem("alice", step="other") == "step 'other' is not waiting for approval (waiting: gate)"
    assert problem(" ") == "an approver name is required"
    assert decision_problem({}, ApprovalDecision("alice", True), {}, "")[1] == "no approval is waiting in this incident"
    two = {"a": pending("a"), "b": pending("b")}
    assert "name the step" in str(decision_problem(two, ApprovalDecision("alice", True), {}, "")[1])
    loop = {"fix[0]": pending("fix[0]"), "fix[1]": pending("fix[1]")}
    assert "several approvals waiting" in str(decision_problem(loop, ApprovalDecision("alice", True, "fix"), {}, "")[1])


def test_quorum_duplicates_and_rejection() -> None:
    state, gate = IncidentState(), pending()
    receipt = apply_decision(state, gate, ApprovalDecision("alice", True), NOW)
    assert (receipt.approvals, receipt.required, receipt.outcome) == (1, 2, "pending")
    assert decision_problem({"gate": gate}, ApprovalDecision("alice", True), {}, "")[1] == \
        "'alice' has already voted on step 'gate'"
    assert apply_decision(state, gate, ApprovalDecision("bob", True), NOW).outcome == "approved"
    assert [v["approver"] for v in state.approval_log] == ["alice", "bob"]
    rejected = pending()
    assert apply_decision(state, rejected, ApprovalDecision("bob", False, comment="not now"), NOW).outcome == "rejected"
    assert state.timeline[-1]["detail"]["outcome"] == "rejected"
