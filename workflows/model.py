"""Inputs, messages and search attributes of the incident workflow (all JSON-serialisable dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

TASK_QUEUE = "incidentctl"

STATUS_ATTR = SearchAttributeKey.for_keyword("IncidentStatus")
SEVERITY_ATTR = SearchAttributeKey.for_keyword("IncidentSeverity")
RUNBOOK_ATTR = SearchAttributeKey.for_keyword("IncidentRunbook")
SERVICE_ATTR = SearchAttributeKey.for_keyword("IncidentService")


def incident_search_attributes(status: str, severity: str, runbook: str, service: str) -> TypedSearchAttributes:
    """What a new incident is listed by in the Temporal UI and `incidentctl incident list`."""
    return TypedSearchAttributes([
        SearchAttributePair(STATUS_ATTR, status), SearchAttributePair(SEVERITY_ATTR, severity),
        SearchAttributePair(RUNBOOK_ATTR, runbook), SearchAttributePair(SERVICE_ATTR, service),
    ])


# Incident statuses (docs/lifecycle.md), in the order an incident normally moves through them. An incident is
# open until a person closes it; while its runbook runs it is mitigating (waiting_approval or rolling_back at
# times), then mitigated or needs_attention, monitoring while its alerts stay quiet, resolved, closed.
OPEN = "open"
MITIGATING = "mitigating"
WAITING_APPROVAL = "waiting_approval"
ROLLING_BACK = "rolling_back"
MITIGATED = "mitigated"
NEEDS_ATTENTION = "needs_attention"
MONITORING = "monitoring"
RESOLVED = "resolved"
CLOSED = "closed"
CANCELLED = "cancelled"
# Incidents started before the lifecycle ended with their runbook; kept so their histories replay.
RUNNING = "running"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
# Runbook outcomes (`outcome` of an incident's last runbook run).
SUCCEEDED = "succeeded"


@dataclass
class IncidentInput:
    incident_id: str
    plan: dict[str, Any]  # the compiled plan as JSON (incidentctl.dsl.plan.Plan.to_json()), pinned with the incident
    params: dict[str, Any] = field(default_factory=dict)
    alert: dict[str, Any] | None = None
    severity: str = "SEV3"
    service: str = ""
    started_by: str = ""
    dry_run: bool = False
    # Group name -> member users, resolved when the incident starts and pinned with the plan.
    groups: dict[str, list[str]] = field(default_factory=dict)
    # Continue-as-new once history passes this many events (Temporal also suggests it near its limits).
    history_event_limit: int = 8000
    # Alert-started incidents look up earlier closed runs of the same key (re-fires) when they start.
    track_refires: bool = False
    # The broken thing this incident holds (claimed by the receiver on its TargetWorkflow); released at the end.
    target: str = ""
    # `<key id>:<hmac of the plan's sha256>` from whoever compiled it (incidentctl/plan_signing.py).
    plan_signature: str = ""
    # Identity proof of StartClaim(started_by, plan hash) from whoever verified the starter (incidentctl/identity.py).
    start_proof: str = ""
    # Set only by continue-as-new: the interpreter state to resume from.
    carried: dict[str, Any] | None = None


def wire(inp: IncidentInput) -> Any:
    """The input as the client sends it: its fields as they are, without the deep copy that Temporal's JSON
    converter makes of a dataclass (`dataclasses.asdict`), which for a plan of a few hundred nodes cost more
    than the rest of starting an incident. The worker decodes it into IncidentInput by the run method's type."""
    return dict(vars(inp))


@dataclass
class StartClaim:
    """Who started an incident, with which plan: what a start's identity proof covers."""

    started_by: str
    plan_hash: str


@dataclass
class ApprovalDecision:
    approver: str
    approve: bool
    step: str = ""  # optional when exactly one approval is waiting
    comment: str = ""
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it


@dataclass
class ApprovalReceipt:
    step: str
    approver: str
    approve: bool
    approvals: int
    required: int
    outcome: str  # "pending", "approved" or "rejected"


@dataclass
class AlertNotification:
    """One delivery from a sender (an Alertmanager group notification, or a single alert) for one incident."""

    alerts: list[dict[str, Any]]  # each: fingerprint, status, labels, annotations, startsAt, endsAt, generatorURL
    group_key: str = ""
    receiver: str = ""
    source: str = "alertmanager"
    # Set when these alerts' own runbook would have opened another incident for the same target, and they
    # joined this one instead: {"target", "runbook", "incident_key"} (docs/lifecycle.md).
    joined: dict[str, Any] | None = None


@dataclass
class AlertReceipt:
    incident_id: str
    run_id: str
    notifications: int
    firing: int
    resolved: int
    new_alerts: int
    status: str
    # This notification closes the incident (a re-fire after its reopen window): deliver it again once the run
    # has ended, and it starts a new incident linked to this one.
    successor: bool = False


@dataclass
class Note:
    by: str
    text: str
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it


@dataclass
class SeverityChange:
    by: str
    severity: str
    reason: str = ""
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it


@dataclass
class Resolution:
    by: str
    summary: str = ""
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it


@dataclass
class Reopening:
    by: str
    reason: str = ""
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it


@dataclass
class Closure:
    by: str
    no_review: bool = False  # SEV1/SEV2 incidents are closed after their review unless this says otherwise
    reason: str = ""
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it


@dataclass
class RunbookRequest:
    """Run another runbook inside an open incident (its compiled plan as JSON, pinned like the first one's)."""

    by: str
    plan: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    plan_signature: str = ""
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it


@dataclass
class CommandReceipt:
    incident_id: str
    status: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Assignment:
    by: str
    commander: str = ""
    assignee: str = ""
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it


@dataclass
class Acknowledgement:
    by: str
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it


@dataclass
class ReviewEdit:
    """A person's edit of the post-incident review: `fields` may hold summary, impact, root_cause (str),
    what_went_well, what_to_improve (list[str]), action_items (list[{text, owner}]) and completed (bool)."""

    by: str
    fields: dict[str, Any] = field(default_factory=dict)
    proof: str = ""  # who verified the person (incidentctl/identity.py), where the worker requires it
