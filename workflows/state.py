"""An incident's state as one dataclass: what continue-as-new carries, what a restart restores, what `show` sees.

Pure: no Temporal calls, so it is tested without a server. A field added here is carried, restored and (if
the summary names it) shown without further edits; a field missing from an older carried state keeps its
fresh default, so incidents that continued-as-new under earlier code resume.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from workflows.model import RUNNING

MAX_TIMELINE_EVENTS = 2000
# Dropping from the timeline keeps the start of the story (this many events) and the most recent ones.
TIMELINE_HEAD = 100

_TRANSIENT = {"transient": True}
TIMES = ("detected_at", "opened_at", "acknowledged_at", "mitigating_at", "mitigated_at", "needs_attention_at",
         "monitoring_at", "resolved_at", "closed_at")


def empty_review() -> dict[str, Any]:
    return {"summary": None, "impact": None, "root_cause": None, "what_went_well": [], "what_to_improve": [],
            "action_items": [], "completed_by": None, "completed_at": None}


@dataclass
class IncidentState:
    status: str = RUNNING
    pc: int = 0  # index of the next top-level step
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # top-level scope: step id -> result
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # step key -> record, for people
    timeline: list[dict[str, Any]] = field(default_factory=list)
    events_dropped: int = 0
    approval_log: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""
    failure: dict[str, Any] | None = None
    runs: int = 1
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> status, labels, counts
    notifications: int = 0
    roles: dict[str, Any] = field(default_factory=dict)
    comms_seq: int = 0
    resolved_handled: bool = False
    refires: dict[str, Any] = field(default_factory=lambda: {"count": 0, "previous_run_id": None})
    # The lifecycle (docs/lifecycle.md); empty for incidents started before it, whose runbook ended them.
    severity: str = ""
    outcome: str | None = None  # of the last runbook run
    times: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(TIMES))
    severity_changes: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    runbook_runs: list[dict[str, Any]] = field(default_factory=list)
    resolution: dict[str, Any] | None = None
    review: dict[str, Any] = field(default_factory=empty_review)
    closed_by: str | None = None
    quiet_until: str | None = None  # while monitoring: resolved unless an alert fires before then
    reopen_until: str | None = None  # once resolved: a re-fire before then re-opens this incident
    refire_pending: bool = False  # an alert fired again after the incident resolved; the lifecycle decides
    # Group name -> members, read by the worker from its people file when the incident started (None: incidents
    # started before that, which use the groups their starter pinned in the input).
    groups: dict[str, list[str]] | None = None
    # What the worker that admitted this incident requires of people's commands (identity_policy.IdentityPolicy
    # pinned: required, trusted public keys); None for incidents admitted before it, which take `by` as given.
    identity: dict[str, Any] | None = None
    used_proofs: dict[str, int] = field(default_factory=dict)  # nonce -> issued (s): a proof counts once
    # Alert groups of other runbooks that joined this incident because they are about the same target.
    joined: list[dict[str, Any]] = field(default_factory=list)
    # Changes this incident made under a lease (one per mutating step run), for the review.
    leases: list[dict[str, Any]] = field(default_factory=list)
    # Step key -> {"approval", "action", "params"}: what an approval approved, for that step's next run only.
    # Carried: continue-as-new may come between a top-level approval and the step it approved.
    approved_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Only while a run is under way (continue-as-new happens between top-level steps, when none is set).
    running: list[str] = field(default_factory=list, metadata=_TRANSIENT)
    approvals: dict[str, Any] = field(default_factory=dict, metadata=_TRANSIENT)  # key -> PendingApproval

    def carry(self) -> dict[str, Any]:
        """What continue-as-new hands to the next run."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("transient")}

    def restore(self, carried: dict[str, Any]) -> None:
        for f in dataclasses.fields(self):
            if f.name in carried and not f.metadata.get("transient"):
                setattr(self, f.name, carried[f.name])

    def event(self, at: str, kind: str, step: str | None = None, detail: dict[str, Any] | None = None) -> None:
        entry: dict[str, Any] = {"at": at, "kind": kind}
        if step:
            entry["step"] = step
        if detail:
            entry["detail"] = detail
        self.timeline.append(entry)
        if len(self.timeline) > MAX_TIMELINE_EVENTS:
            del self.timeline[TIMELINE_HEAD]
            self.events_dropped += 1

    def alert_status(self) -> str | None:
        if not self.alerts:
            return None
        return "firing" if any(a["status"] == "firing" for a in self.alerts.values()) else "resolved"

    def summary(self, identity: dict[str, Any]) -> dict[str, Any]:
        """What `incident show`, the `state` query and the workflow result say; `identity` is the input's part."""
        return {
            **identity,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at or None,
            "current_steps": list(self.running),
            "steps": self.records,
            "pending_approvals": [dataclasses.asdict(p) for p in self.approvals.values()],
            "approvals": self.approval_log,
            "failure": self.failure,
            "runs": self.runs,
            "timeline_events": len(self.timeline) + self.events_dropped,
            "alert_status": self.alert_status(),
            "alerts": self.alerts,
            "notifications": self.notifications,
            "refires": self.refires,
            "roles": self.roles,
            "severity": self.severity or identity.get("severity"),
            "outcome": self.outcome,
            "times": self.times,
            "severity_changes": self.severity_changes,
            "notes": self.notes,
            "runbook_runs": self.runbook_runs,
            "resolution": self.resolution,
            "review": self.review,
            "closed_by": self.closed_by,
            "joined": self.joined,
            "leases": self.leases,
        }

    def last_approvers(self) -> list[str]:
        """Who approved the most recent approval step that was approved (for the record of a change)."""
        approving = [v for v in self.approval_log if v.get("approve")]
        if not approving:
            return []
        step = approving[-1]["step"]
        return [v["approver"] for v in approving if v["step"] == step]

    def mark(self, name: str, at: str) -> None:
        """Record when the incident first reached a stage (times keep the first, for durations)."""
        if not self.times.get(name):
            self.times[name] = at
