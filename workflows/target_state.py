"""What one broken thing knows: the incident open for it, who may change it now, and what changed it lately.

Pure (tested without a server); `TargetWorkflow` (workflows/targets.py) holds one per target and applies the
messages below in the order Temporal delivers them. A target is named by a key such as
`k8s/prod/shop/deployments/api` (docs/lifecycle.md, "One incident per broken thing").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Request ids answered lately, so a retried request (the activity that sends it may run twice) is not queued again.
ANSWERED_KEPT = 200


@dataclass
class Claim:
    """Sent by the receiver: `incident_id` would like to be the incident of this target."""

    incident_id: str
    runbook: str
    alertname: str = ""
    stale_owner: str = ""  # the receiver found this owner closed: replace it


@dataclass
class ClaimReceipt:
    owner: str
    joined: bool  # True: another incident already holds the target, the alerts go to it


@dataclass
class LeaseRequest:
    request_id: str
    incident_id: str
    step: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    hold_s: float = 3600.0  # the lease lapses after this long even if never released (an incident terminated)
    recent_window_s: float = 1800.0  # the requester's runbook: which earlier changes need a fresh approval


@dataclass
class LeaseCall:
    """The incident's request, as the activity that delivers it (signal-with-start) receives it."""

    target: str
    request: LeaseRequest


@dataclass
class LeaseAnswer:
    """Sent to the requesting incident: granted (with the other incidents' recent changes), or queued behind
    the holder."""

    request_id: str
    incident_id: str  # the requester, to whom the answer goes
    target: str
    granted: bool
    holder: dict[str, Any] | None = None
    recent_changes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LeaseRelease:
    request_id: str
    incident_id: str
    change: dict[str, Any] | None = None  # what the action did; None when it did not run (refused, withdrawn)


@dataclass
class TargetState:
    target: str
    owner: str | None = None
    owner_since: str | None = None
    joined: list[dict[str, Any]] = field(default_factory=list)
    holder: dict[str, Any] | None = None
    queue: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    recent_window_s: float = 0.0  # the longest any requester asked for: how long changes are remembered

    def carry(self) -> dict[str, Any]:
        return asdict(self)

    # ---------------------------------------------------------------- incidents

    def claim(self, claim: Claim, now: str) -> ClaimReceipt:
        if self.owner and claim.stale_owner and claim.stale_owner == self.owner:
            self.owner = None
        if self.owner is None or self.owner == claim.incident_id:
            if self.owner is None:
                self.owner, self.owner_since, self.joined = claim.incident_id, now, []
            return ClaimReceipt(owner=self.owner, joined=False)
        entry = {"incident_id": claim.incident_id, "runbook": claim.runbook, "alertname": claim.alertname, "at": now}
        if not any(j["incident_id"] == claim.incident_id for j in self.joined):
            self.joined.append(entry)
        return ClaimReceipt(owner=self.owner, joined=True)

    def release_incident(self, incident_id: str) -> bool:
        if self.owner != incident_id:
            return False
        self.owner, self.owner_since, self.joined = None, None, []
        return True

    # ---------------------------------------------------------------- leases

    def request(self, req: LeaseRequest, now: datetime) -> list[LeaseAnswer]:
        """Queue the request (once) and grant what can be granted; the answers to send."""
        if req.request_id in self.answered or self._queued(req.request_id):
            holder = self.holder
            if holder and holder["request_id"] == req.request_id:  # the grant may have been lost: send it again
                return [self._grant_answer(holder, now)]
            return []
        self.recent_window_s = max(self.recent_window_s, req.recent_window_s)
        self.queue.append({**asdict(req), "requested_at": now.isoformat()})
        answers = self.grant_next(now)
        if not any(a.request_id == req.request_id for a in answers):
            answers.append(LeaseAnswer(request_id=req.request_id, incident_id=req.incident_id, target=self.target,
                                       granted=False,
                                       holder=self._public(self.holder)))
        return answers

    def release(self, release: LeaseRelease, now: datetime) -> list[LeaseAnswer]:
        self.queue = [q for q in self.queue if q["request_id"] != release.request_id]
        holder = self.holder
        if holder and holder["request_id"] == release.request_id:
            if release.change is not None:
                self.changes.append({**self._public(holder), **release.change, "at": now.isoformat()})
            self.holder = None
        self._remember(release.request_id)
        return self.grant_next(now)

    def expire(self, now: datetime) -> tuple[dict[str, Any] | None, list[LeaseAnswer]]:
        """Drop a lease held past its time (its incident never released it); the expired lease and answers."""
        holder = self.holder
        if holder is None or datetime.fromisoformat(holder["expires_at"]) > now:
            return None, []
        self.holder = None
        return self._public(holder), self.grant_next(now)

    def grant_next(self, now: datetime) -> list[LeaseAnswer]:
        if self.holder is not None or not self.queue:
            return []
        request = self.queue.pop(0)
        self.holder = {**request, "granted_at": now.isoformat(),
                       "expires_at": (now + timedelta(seconds=request["hold_s"])).isoformat()}
        self._remember(request["request_id"])
        return [self._grant_answer(self.holder, now)]

    def recent_changes(self, now: datetime, other_than: str, window_s: float | None = None) -> list[dict[str, Any]]:
        """Changes to this target by incidents other than `other_than` within the window (default: the
        longest any requester asked for, which is also how long changes are kept)."""
        since = now - timedelta(seconds=self.recent_window_s if window_s is None else window_s)
        return [c for c in self.changes
                if c["incident_id"] != other_than and datetime.fromisoformat(c["at"]) >= since]

    def forget_old_changes(self, now: datetime) -> None:
        since = now - timedelta(seconds=self.recent_window_s)
        self.changes = [c for c in self.changes if datetime.fromisoformat(c["at"]) >= since]

    # ---------------------------------------------------------------- when the workflow may end or must wake

    def idle(self) -> bool:
        return self.owner is None and self.holder is None and not self.queue and not self.changes

    def next_deadline(self) -> datetime | None:
        """When something lapses on its own: the holder's lease, or the oldest remembered change."""
        times = []
        if self.holder:
            times.append(datetime.fromisoformat(self.holder["expires_at"]))
        if self.changes:
            times.append(datetime.fromisoformat(self.changes[0]["at"]) + timedelta(seconds=self.recent_window_s))
        return min(times) if times else None

    # ---------------------------------------------------------------- helpers

    def _queued(self, request_id: str) -> bool:
        return any(q["request_id"] == request_id for q in self.queue) or bool(
            self.holder and self.holder["request_id"] == request_id)

    def _remember(self, request_id: str) -> None:
        if request_id not in self.answered:
            self.answered = [*self.answered, request_id][-ANSWERED_KEPT:]

    def _grant_answer(self, holder: dict[str, Any], now: datetime) -> LeaseAnswer:
        return LeaseAnswer(request_id=holder["request_id"], incident_id=holder["incident_id"], target=self.target,
                           granted=True,
                           recent_changes=self.recent_changes(now, holder["incident_id"],
                                                              holder.get("recent_window_s")))

    @staticmethod
    def _public(lease: dict[str, Any] | None) -> dict[str, Any] | None:
        """A lease as the other incidents see it (who, which step, what action, since when)."""
        if lease is None:
            return None
        return {k: lease[k] for k in ("incident_id", "step", "action", "params", "granted_at") if k in lease}
