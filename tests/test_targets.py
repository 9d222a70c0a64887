"""One incident per broken thing, the pure parts: targets from alert labels, the TargetWorkflow's state (claims,
leases in request order, recent changes, lapses), lease keys from action params, who gives a fresh approval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.k8s.schemas import DEPLOYMENT_LEASE, NODE_LEASE
from incidentctl.dsl.plan import Approval, Leases, Plan, RunbookInfo, Step
from incidentctl.intake.targets import derived_target, target_of
from workflows.leases import describe_change, lease_key
from workflows.target_state import Claim, LeaseRelease, LeaseRequest, TargetState

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


# -- targets from labels ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("labels", "target"), [
    ({"namespace": "shop", "deployment": "cart"}, "k8s//shop/deployments/cart"),
    ({"cluster": "eu", "namespace": "shop", "pod": "cart-7d4b9c8f6d-x2x9z"}, "k8s/eu/shop/deployments/cart"),
    ({"namespace": "shop", "replicaset": "cart-7d4b9c8f6d"}, "k8s//shop/deployments/cart"),
    ({"namespace": "shop", "statefulset": "db", "pod": "db-0"}, "k8s//shop/statefulsets/db"),
    ({"node": "node-3"}, "k8s///nodes/node-3"),
])
def test_alerts_name_their_target(labels: dict[str, str], target: str) -> None:
    assert derived_target(labels) == target


@pytest.mark.parametrize("labels", [
    {"namespace": "shop", "pod": "db-0"},  # a StatefulSet's pod: no owner to tell from the name
    {"namespace": "shop", "pod": "cart-1"},
    {"namespace": "shop", "pod": "api-aeiou1-x2x9z"},  # vowels and 1 are never in a pod-template hash
    {"namespace": "shop"},
    {"namespace": "shop", "pod": "cart-7d4b9c8f6d-x2x9z", "node": "node-3"},  # about a pod on a node: the pod
])
def test_labels_that_name_no_workload_give_no_target_or_the_pods_owner(labels: dict[str, str]) -> None:
    expected = "k8s//shop/deployments/cart" if labels.get("node") else None
    assert derived_target(labels) == expected


def test_a_runbook_sets_or_turns_off_the_target() -> None:
    alert = {"labels": {"namespace": "shop", "deployment": "cart", "team": "payments"}}
    assert target_of(None, alert) == "k8s//shop/deployments/cart"
    assert target_of(False, alert) is None
    assert target_of("team/${{ alert.labels.team }}", alert) == "team/payments"
    assert target_of("${{ alert.labels.missing }}", alert) is None


def test_the_lease_of_a_change_and_the_target_of_an_alert_name_the_same_object() -> None:
    params = {"namespace": "shop", "deployment": "cart", "context": "eu", "replicas": 3}
    assert lease_key(DEPLOYMENT_LEASE, params) == derived_target(
        {"cluster": "eu", "namespace": "shop", "pod": "cart-7d4b9c8f6d-x2x9z"})
    assert lease_key(NODE_LEASE, {"node": "node-3", "context": None}) == derived_target({"node": "node-3"})


# -- claims ----------------------------------------------------------------------------------------------------------

def test_the_first_claim_holds_the_target_and_later_ones_join_it() -> None:
    state = TargetState(target="k8s//shop/deployments/cart")
    first = state.claim(Claim("incident-a", "k8s-pod-crashlooping", "KubePodCrashLooping"), T0.isoformat())
    second = state.claim(Claim("incident-b", "k8s-deployment-replicas-mismatch", "KubeDeploymentReplicasMismatch"),
                         T0.isoformat())
    again = state.claim(Claim("incident-a", "k8s-pod-crashlooping"), T0.isoformat())
    assert (first.owner, first.joined) == ("incident-a", False)
    assert (second.owner, second.joined) == ("incident-a", True)
    assert (again.owner, again.joined) == ("incident-a", False)
    assert [j["runbook"] for j in state.joined] == ["k8s-deployment-replicas-mismatch"]


def test_a_released_or_stale_owner_gives_way() -> None:
    state = TargetState(target="t")
    state.claim(Claim("incident-a", "r"), T0.isoformat())
    assert not state.release_incident("incident-b"), "only the owner releases"
    refused = state.claim(Claim("incident-b", "r", stale_owner="incident-x"), T0.isoformat())
    assert refused.owner == "incident-a", "a stale report about another owner changes nothing"
    taken = state.claim(Claim("incident-b", "r", stale_owner="incident-a"), T0.isoformat())
    assert (taken.owner, taken.joined) == ("incident-b", False)
    assert state.release_incident("incident-b") and state.owner is None


# -- leases ----------------------------------------------------------------------------------------------------------

def request(request_id: str, incident: str, hold_s: float = 600.0, window_s: float = 1800.0) -> LeaseRequest:
    return LeaseRequest(request_id=request_id, incident_id=incident, step="rollback", action="k8s.rollout_undo",
                        params={"namespace": "shop", "deployment": "cart"}, hold_s=hold_s, recent_window_s=window_s)


def test_leases_are_granted_one_at_a_time_in_request_order() -> None:
    state = TargetState(target="t")
    granted = state.request(request("r1", "incident-a"), T0)
    queued = state.request(request("r2", "incident-b"), T0)
    queued_too = state.request(request("r3", "incident-c"), T0)
    assert [(a.request_id, a.granted) for a in granted] == [("r1", True)]
    assert [(a.request_id, a.granted, a.holder["incident_id"]) for a in queued] == [("r2", False, "incident-a")]
    assert [a.granted for a in queued_too] == [False]
    assert state.request(request("r2", "incident-b"), T0) == [], "a repeated request is not queued twice"
    answers = state.release(LeaseRelease("r1", "incident-a", {"outcome": "done", "approved_by": ["alice"]}),
                            T0 + timedelta(minutes=1))
    assert [(a.request_id, a.incident_id, a.granted) for a in answers] == [("r2", "incident-b", True)]
    assert [c["incident_id"] for c in answers[0].recent_changes] == ["incident-a"], "b sees a's change"
    assert answers[0].recent_changes[0]["approved_by"] == ["alice"]


def test_a_lost_grant_is_sent_again_and_an_answered_request_is_not_queued_again() -> None:
    state = TargetState(target="t")
    state.request(request("r1", "incident-a"), T0)
    resent = state.request(request("r1", "incident-a"), T0)
    assert [(a.request_id, a.granted) for a in resent] == [("r1", True)]
    state.release(LeaseRelease("r1", "incident-a", None), T0)
    assert state.request(request("r1", "incident-a"), T0) == [] and state.holder is None


def test_an_incidents_own_changes_and_old_ones_need_no_fresh_approval() -> None:
    state = TargetState(target="t")
    state.request(request("r1", "incident-a", window_s=600), T0)
    state.release(LeaseRelease("r1", "incident-a", {"outcome": "done"}), T0)
    own = state.request(request("r2", "incident-a", window_s=600), T0 + timedelta(minutes=1))
    state.release(LeaseRelease("r2", "incident-a", None), T0 + timedelta(minutes=1))
    later = state.request(request("r3", "incident-b", window_s=600), T0 + timedelta(minutes=11))
    assert own[0].granted and own[0].recent_changes == []
    assert later[0].granted and later[0].recent_changes == [], "older than the requester's window"
    assert state.recent_changes(T0 + timedelta(minutes=5), "incident-b"), "but within it, it counts"


def test_a_lease_never_released_lapses_and_the_next_request_gets_it() -> None:
    state = TargetState(target="t")
    state.request(request("r1", "incident-a", hold_s=60), T0)
    state.request(request("r2", "incident-b"), T0)
    assert state.expire(T0 + timedelta(seconds=30)) == (None, [])
    assert state.next_deadline() == T0 + timedelta(seconds=60)
    expired, answers = state.expire(T0 + timedelta(seconds=61))
    assert expired is not None and expired["incident_id"] == "incident-a"
    assert [(a.request_id, a.granted) for a in answers] == [("r2", True)]


def test_a_target_is_idle_once_nothing_refers_to_it() -> None:
    state = TargetState(target="t")
    assert state.idle()
    state.request(request("r1", "incident-a", window_s=60), T0)
    state.release(LeaseRelease("r1", "incident-a", {"outcome": "done"}), T0)
    assert not state.idle(), "a recent change is remembered for the window"
    state.forget_old_changes(T0 + timedelta(seconds=61))
    assert state.idle()


# -- the fresh approval ----------------------------------------------------------------------------------------------

def plan(*steps: Step, leases: Leases | None = None, team: str | None = None) -> Plan:
    return Plan(runbook=RunbookInfo(name="r", version="1", team=team), steps=list(steps), leases=leases or Leases())


def test_the_fresh_approval_goes_to_the_runbooks_people() -> None:
    gate = Step(id="gate", kind="approval", approval=Approval(approvers=["alice"], groups=["sre"]))
    assert Leases().people(plan(gate)) == (["alice"], ["sre"])
    assert Leases(groups=["sre-leads"]).people(plan(gate)) == ([], ["sre-leads"])
    assert Leases().people(plan(team="payments")) == ([], ["payments"])


def test_an_earlier_change_is_described_with_who_approved_it() -> None:
    text = describe_change({"incident_id": "incident-a", "step": "rollback", "action": "k8s.rollout_undo",
                            "params": {"namespace": "shop", "deployment": "cart", "context": ""},
                            "approved_by": ["alice"], "at": "2026-12-01T12:00:00+00:00", "outcome": "done"})
    assert text == ("k8s.rollout_undo {'namespace': 'shop', 'deployment': 'cart'} by incident incident-a "
                    "(step rollback) at 2026-12-01T12:00:00+00:00, approved by alice: done")
