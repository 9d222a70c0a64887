"""TargetWorkflow: one small workflow per broken thing, alive while anything refers to it.

It answers two questions that must have one answer across every receiver and worker, which is why it is a
workflow (Temporal runs its handlers one at a time and keeps its state through crashes) and not a lock file:
- which incident is open for this target (the receiver's `claim`, so a second alert about the same deployment
  joins the open incident instead of opening another);
- which incident may change it now (a lease per mutating action, granted in request order and lapsing on its
  own), and what other incidents changed it lately (a second change within the window needs a fresh approval).
Incidents talk to it by signals (workflows cannot send updates); it answers them by signals. It ends when idle.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.target_state import (
        Claim,
        ClaimReceipt,
        LeaseAnswer,
        LeaseRelease,
        LeaseRequest,
        TargetState,
    )

# The incident workflow's signal that carries a LeaseAnswer (named here so both sides agree).
LEASE_ANSWER_SIGNAL = "lease_answer"
REQUEST_SIGNAL = "request_lease"
RELEASE_SIGNAL = "release_lease"
RELEASE_INCIDENT_SIGNAL = "release_incident"
HISTORY_LIMIT = 5000


def target_workflow_id(target: str) -> str:
    """Readable and unique: the target's own words plus a short hash of the exact key."""
    digest = hashlib.sha256(target.encode()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", target).strip("-")[:80]
    return f"target-{readable}-{digest}"


@dataclass
class TargetInput:
    target: str
    carried: dict[str, Any] | None = None


@workflow.defn
class TargetWorkflow:
    @workflow.init
    def __init__(self, inp: TargetInput) -> None:
        self.state = TargetState(**inp.carried) if inp.carried else TargetState(target=inp.target)
        self.outbox: list[LeaseAnswer] = []
        self.log: list[dict[str, Any]] = []
        self.messages = 0  # every handler counts, so the loop wakes to see whether the target became idle

    @workflow.run
    async def run(self, inp: TargetInput) -> dict[str, Any]:
        state = self.state
        while True:
            await self._send()
            now = workflow.now()
            expired, answers = state.expire(now)
            if expired:
                self._event("lease_expired", expired)
                self.outbox += answers
                continue
            state.forget_old_changes(now)
            if state.idle() and not self.outbox:
                # A claim may have landed while the last handlers finished: end only if still idle after them.
                await workflow.wait_condition(workflow.all_handlers_finished)
                if state.idle() and not self.outbox:
                    break
                continue
            if workflow.info().get_current_history_length() > HISTORY_LIMIT or \
                    workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                await self._send()
                workflow.continue_as_new(TargetInput(target=inp.target, carried=state.carry()))
            deadline = state.next_deadline()
            timeout = max((deadline - now).total_seconds(), 0.001) if deadline else None
            seen = self.messages
            try:
                await workflow.wait_condition(lambda seen=seen: bool(self.outbox) or self.messages != seen,
                                              timeout=timedelta(seconds=timeout) if timeout else None)
            except TimeoutError:
                pass
        return {"target": state.target, "log": self.log[-50:]}

    async def _send(self) -> None:
        while self.outbox:
            answer = self.outbox.pop(0)
            request, incident = answer.request_id, answer.incident_id
            try:
                await workflow.get_external_workflow_handle(incident).signal(LEASE_ANSWER_SIGNAL, answer)
            except Exception as exc:  # noqa: BLE001 - the incident is gone: its lease and requests go with it
                self._event("incident_gone", {"incident_id": incident, "error": str(exc)})
                self.outbox += self.state.release(LeaseRelease(request_id=request, incident_id=incident),
                                                  workflow.now())

    def _event(self, kind: str, detail: dict[str, Any]) -> None:
        self.messages += 1
        self.log.append({"at": workflow.now().isoformat(), "event": kind, **detail})

    # ---------------------------------------------------------------- the receiver

    @workflow.update
    def claim(self, claim: Claim) -> ClaimReceipt:
        receipt = self.state.claim(claim, workflow.now().isoformat())
        self._event("joined" if receipt.joined else "claimed", {"incident_id": claim.incident_id,
                                                               "owner": receipt.owner})
        return receipt

    @claim.validator
    def _validate_claim(self, claim: Claim) -> None:
        if not claim.incident_id:
            raise ValueError("a claim names its incident")

    @workflow.update
    def owner(self) -> str:
        """The incident open for this target, or "" (resolved alerts of a joined group find their incident)."""
        return self.state.owner or ""

    @workflow.query
    def describe(self) -> dict[str, Any]:
        return self.state.carry()

    # ---------------------------------------------------------------- incidents

    @workflow.signal(name=REQUEST_SIGNAL)
    def request_lease(self, request: LeaseRequest) -> None:
        self.outbox += self.state.request(request, workflow.now())
        self._event("requested", {"incident_id": request.incident_id, "step": request.step})

    @workflow.signal(name=RELEASE_SIGNAL)
    def release_lease(self, release: LeaseRelease) -> None:
        self.outbox += self.state.release(release, workflow.now())
        self._event("released_lease", {"incident_id": release.incident_id, "changed": release.change is not None})

    @workflow.signal(name=RELEASE_INCIDENT_SIGNAL)
    def release_incident(self, incident_id: str) -> None:
        released = self.state.release_incident(incident_id)
        self._event("released" if released else "release_ignored", {"incident_id": incident_id})
