"""What a deployment requires of people's commands (incidentctl/identity.py says how a proof works).

Worker side: `INCIDENTCTL_IDENTITY` is `required` (the default) or `open`; `INCIDENTCTL_IDENTITY_KEYS` lists the
public keys whose proofs it trusts. Each incident is admitted with this policy (one local activity, so it is
recorded in history and every replay, and every later worker, holds the incident to the same rule). `open`
takes a command's `by` as it is: for `incidentctl dev` and tests, never for a deployment people rely on.

Signer side (the receiver): `INCIDENTCTL_IDENTITY_SIGNING_KEY`, the private key matching one of the workers'
public keys; `incidentctl identity key` makes a pair.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from incidentctl.identity import IdentityError, SigningKey, parse_signing_key, parse_trusted_keys

REQUIRED, OPEN = "required", "open"


@dataclass(frozen=True)
class IdentityPolicy:
    required: bool = True
    keys: dict[str, str] = field(default_factory=dict)  # key id -> base64 Ed25519 public key
    error: str | None = None  # a misconfigured worker refuses every command, and says why

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdentityPolicy:
        env = os.environ if env is None else env
        mode = env.get("INCIDENTCTL_IDENTITY", REQUIRED).strip().lower() or REQUIRED
        if mode not in (REQUIRED, OPEN):
            return cls(error=f"INCIDENTCTL_IDENTITY must be {REQUIRED} or {OPEN}, not {mode!r}")
        try:
            keys = parse_trusted_keys(env.get("INCIDENTCTL_IDENTITY_KEYS", ""))
        except IdentityError as exc:
            return cls(error=str(exc))
        if mode == OPEN:
            return cls(required=False, keys=keys)
        if not keys:
            return cls(keys=keys, error="this worker requires verified people but trusts no signer: set "
                                        "INCIDENTCTL_IDENTITY_KEYS (`incidentctl identity key` makes a pair), or "
                                        "INCIDENTCTL_IDENTITY=open where anyone may act as anyone")
        return cls(keys=keys)

    @classmethod
    def for_dev(cls, env: Mapping[str, str] | None = None) -> IdentityPolicy:
        """`incidentctl dev` and the demo: names taken as given unless INCIDENTCTL_IDENTITY says otherwise."""
        env = os.environ if env is None else env
        return cls.from_env({**env, "INCIDENTCTL_IDENTITY": env.get("INCIDENTCTL_IDENTITY", OPEN)})

    def pinned(self) -> dict[str, Any]:
        """As recorded in the incident (public keys only)."""
        return {"required": self.required, "keys": dict(self.keys), "error": self.error}


def signing_key_from_env(env: Mapping[str, str] | None = None) -> SigningKey | None:
    """The receiver's signing key, or None when it signs nothing (commands then carry no proof)."""
    env = os.environ if env is None else env
    raw = env.get("INCIDENTCTL_IDENTITY_SIGNING_KEY", "")
    return parse_signing_key(raw) if raw.strip() else None
