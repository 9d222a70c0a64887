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
    from incidentctl.identity import Verdict, check, forget_expired
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

    def _policy_problem(self) -> tuple[bool, str | None]:
        """(whether proofs are checked, why nothing can be verified at all)."""
        identity = self._run.state.identity
        if identity is None:
            # Admitted before identity checks existed: `by` is taken as given, as it was then.
            return False, ("the incident is being admitted by its worker: send it again in a moment"
                           if self.admitting else None)
        if not identity["required"]:
            return False, None
        if identity.get("error"):
            return True, f"the worker cannot verify anyone: {identity['error']}"
        return True, None

    def _verdict(self, command: Any) -> Verdict | None:
        """The check of `command`'s proof, or None when proofs are not checked for this incident."""
        checked, problem = self._policy_problem()
        if problem or not checked:
            return Verdict(problem) if problem else None
        identity = self._run.state.identity
        assert identity is not None
        return check(getattr(command, "proof", ""), identity["keys"], self._run.input.incident_id, command,
                     workflow.now().timestamp(), self._run.state.used_proofs)

    def problem(self, command: Any) -> str | None:
        verdict = self._verdict(command)
        return verdict.problem if verdict else None

    def start_problem(self) -> str | None:
        """Why the incident's start does not count (its starter unproven where people must be verified), or None.
        Judged as of the start (`start_time`), so an incident that waited for a worker is not refused for it."""
        checked, problem = self._policy_problem()
        if problem or not checked:
            return problem
        identity, inp = self._run.state.identity, self._run.input
        assert identity is not None
        claim = StartClaim(started_by=inp.started_by, plan_hash=plan_hash(inp.plan))
        return check(inp.start_proof, identity["keys"], inp.incident_id, claim,
                     workflow.info().start_time.timestamp(), {}).problem

    def spend(self, command: Any) -> str | None:
        """`problem`, and when there is none the proof is used up."""
        verdict = self._verdict(command)
        if verdict is None:
            return None
        if verdict.problem is None:
            used = self._run.state.used_proofs
            forget_expired(used, workflow.now().timestamp())
            used[verdict.nonce] = verdict.issued
        return verdict.problem
