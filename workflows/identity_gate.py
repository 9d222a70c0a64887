"""People's commands pass here first: where the admitting worker requires verified people, a command counts
only with a proof from a signer it trusts (incidentctl/identity.py), once.

Validators ask `problem` (nothing changes, so a refusal never enters history); handlers call `spend`, which
checks again and remembers the proof's nonce, so the same proof sent twice counts once. The signal path has
no validator: `spend` alone decides, on the timeline.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from incidentctl.dsl.plan import plan_hash
    from incidentctl.identity import check, forget_expired
    from workflows.context import IncidentRun
    from workflows.model import StartClaim


class IdentityGate:
    def __init__(self, run: IncidentRun, admitting: bool) -> None:
        self._run = run
        # A new incident until its worker admitted it: the policy is not known yet, so no command counts.
        self.admitting = admitting

    def pin(self, admission: dict[str, Any]) -> None:
        """The admitting worker's policy, for the life of the incident (public keys only)."""
        identity = admission.get("identity") or {"required": False, "keys": {}, "error": None}
        self._run.state.identity = identity
        self.admitting = False
        self._run.event("identity_policy", detail={"required": identity["required"], "keys": sorted(identity["keys"]),
                                                   "error": identity.get("error")})

    def problem(self, command: Any) -> str | None:
        identity = self._run.state.identity
        if identity is None:
            return "the incident is being admitted by its worker: send it again in a moment" if self.admitting \
                else None  # admitted before identity checks existed: `by` is taken as given, as it was then
        if not identity["required"]:
            return None
        if identity.get("error"):
            return f"the worker cannot verify anyone: {identity['error']}"
        return check(getattr(command, "proof", ""), identity["keys"], self._run.input.incident_id, command,
                     workflow.now().timestamp(), self._run.state.used_proofs).problem

    def start_problem(self) -> str | None:
        """Why the incident's start does not count (its starter unproven where people must be verified), or None.
        Judged as of the start (`start_time`), so an incident that waited for a worker is not refused for it."""
        identity, inp = self._run.state.identity, self._run.input
        if identity is None or not identity["required"]:
            return None
        if identity.get("error"):
            return f"the worker cannot verify anyone: {identity['error']}"
        claim = StartClaim(started_by=inp.started_by, plan_hash=plan_hash(inp.plan))
        return check(inp.start_proof, identity["keys"], inp.incident_id, claim,
                     workflow.info().start_time.timestamp(), {}).problem

    def spend(self, command: Any) -> str | None:
        """`problem`, and when there is none the proof is used up."""
        problem = self.problem(command)
        identity = self._run.state.identity
        if problem is None and identity is not None and identity["required"]:
            used, now = self._run.state.used_proofs, workflow.now().timestamp()
            forget_expired(used, now)
            _, _, issued, nonce, _ = command.proof.split(".")
            used[nonce] = int(issued)
        return problem
