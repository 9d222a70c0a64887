"""The lifecycle's rules without a server: where an incident goes by itself, and which commands are refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from incidentctl.dsl.plan import Resolve
from workflows.lifecycle import command_problem, next_transition, requirement
from workflows.model import Closure, Note, Reopening, Resolution, RunbookRequest
from workflows.state import IncidentState

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def state(status: str, outcome: str | None = "succeeded", alerts: dict | None = None, **kwargs: object
          ) -> IncidentState:
    return IncidentState(status=status, outcome=outcome, alerts=alerts or {}, severity="SEV3", **kwargs)  # type: ignore[arg-type]


FIRING = {"a": {"status": "firing"}}
RESOLVED = {"a": {"status": "resolved"}}


def test_what_resolves_an_incident_by_default() -> None:
    assert requirement(state("mitigated"), Resolve()) == "runbook", "no alerts: the runbook's success"
    assert requirement(state("mitigated", alerts=FIRING), Resolve()) == "alerts"
    assert requirement(state("mitigated", alerts=FIRING), Resolve(requires="person")) == "person"


def test_alerts_clearing_start_the_quiet_window_and_a_firing_alert_ends_it() -> None:
    assert next_transition(state("mitigated", alerts=FIRING), Resolve(), NOW) is None
    to_monitoring = next_transition(state("needs_attention", "failed", RESOLVED), Resolve(), NOW)
    assert to_monitoring is not None and to_monitoring.status == "monitoring"
    back = next_transition(state("monitoring", "failed", FIRING, quiet_until=(NOW + timedelta(1)).isoformat()),
                           Resolve(), NOW)
    assert back is not None and back.status == "needs_attention", "back to where the runbook left it"
    quiet = state("monitoring", alerts=RESOLVED, quiet_until=(NOW + timedelta(seconds=5)).isoformat())
    assert next_transition(quiet, Resolve(), NOW) is None, "still inside the quiet window"
    done = next_transition(quiet, Resolve(quiet_for_s=5), NOW + timedelta(seconds=5))
    assert done is not None and (done.status, done.by) == ("resolved", "alerts")


def test_the_runbook_resolves_only_when_it_succeeded_and_a_person_resolves_otherwise() -> None:
    resolved = next_transition(state("mitigated"), Resolve(), NOW)
    assert resolved is not None and (resolved.status, resolved.by) == ("resolved", "runbook")
    assert next_transition(state("needs_attention", "failed"), Resolve(), NOW) is None
    assert next_transition(state("mitigated", alerts=RESOLVED), Resolve(requires="person"), NOW) is None


def test_commands_are_refused_with_the_reason() -> None:
    assert command_problem(state("mitigating"), Resolution(by="bob")) == (
        "a runbook is running (mitigating): let it finish, or cancel the incident")
    assert command_problem(state("mitigated"), Resolution(by=" ")) == "say who you are (--as)"
    assert command_problem(state("mitigated"), Reopening(by="bob")) == (
        "only a resolved incident can be re-opened (it is mitigated)")
    assert command_problem(state("mitigated"), Closure(by="bob")).startswith("only a resolved incident can be closed")
    sev1 = state("resolved")
    sev1.severity = "SEV1"
    assert "closed after its review" in str(command_problem(sev1, Closure(by="bob")))
    assert command_problem(sev1, Closure(by="bob", no_review=True)) is None
    sev1.review["completed_at"] = NOW.isoformat()
    assert command_problem(sev1, Closure(by="bob")) is None
    assert command_problem(state("closed"), Note(by="bob", text="x")) == "the incident is closed"
    assert command_problem(state("waiting_approval"), RunbookRequest(by="bob", plan={"runbook": {}})) == (
        "a runbook is already running (waiting_approval)")
    assert command_problem(state("needs_attention", "failed"), RunbookRequest(by="bob", plan={})) == (
        "the request carries no compiled plan")
    assert command_problem(state("resolved"), Resolution(by="bob")).startswith("already resolved")
