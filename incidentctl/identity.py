"""Who a person's command comes from, proven to the workflow: an identity proof signed by whoever verified them.

The receiver checks a person's credential (a personal token today) and signs the command it builds with an
Ed25519 key (`INCIDENTCTL_IDENTITY_SIGNING_KEY`). The proof covers the incident, the command's kind and every
field of it (who acts, the decision, the step, the comment...), when it was issued and a one-time nonce. A
worker that requires verified people (`INCIDENTCTL_IDENTITY=required`) admits each incident with the public
keys it trusts (`INCIDENTCTL_IDENTITY_KEYS`), and the workflow refuses a command whose proof is missing, made
with another key, altered, older than `MAX_AGE_S` or used before: a vote sent with `temporal workflow
signal`, or by any Temporal client, is refused unless someone trusted verified that person.

Public keys only reach workflows (they are in history; a private key never is), so the check runs in update
validators and a refused vote never enters history. Pure apart from `sign` (clock and randomness).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from incidentctl.keyring import KEY_BYTES, KeyringError, parse_keys

VERSION = "v1"
MAX_AGE_S = 300  # a proof is good this long after it was issued (and once)
MAX_AHEAD_S = 60  # clocks differ: a proof issued this far in the future still counts
MAKER = "incidentctl identity key"
PROOF_FIELD = "proof"


class IdentityError(KeyringError):
    pass


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    seed: bytes

    def public_line(self) -> str:
        raw = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.key_id}={base64.b64encode(raw).decode()}"


def new_signing_key(key_id: str) -> SigningKey:
    return SigningKey(key_id, secrets.token_bytes(KEY_BYTES))


def signing_key_line(key: SigningKey) -> str:
    return f"{key.key_id}={base64.b64encode(key.seed).decode()}"


def _parsed(text: str, where: str) -> list[tuple[str, bytes]]:
    try:
        return parse_keys(text, where, MAKER)
    except KeyringError as exc:
        raise IdentityError(str(exc)) from None


def parse_signing_key(text: str, where: str = "INCIDENTCTL_IDENTITY_SIGNING_KEY") -> SigningKey:
    keys = _parsed(text, where)
    if len(keys) != 1:
        raise IdentityError(f"{where}: one key signs (`id=<base64 of {KEY_BYTES} bytes>`), not {len(keys)}")
    return SigningKey(*keys[0])


def parse_trusted_keys(text: str, where: str = "INCIDENTCTL_IDENTITY_KEYS") -> dict[str, str]:
    """Key id -> base64 public key (the form pinned in an incident's history)."""
    return {key_id: base64.b64encode(raw).decode() for key_id, raw in _parsed(text, where)}


def actor(command: Any) -> str:
    """Who a command says acts: `approver` of a vote, `started_by` of a start, `by` of every other command."""
    return str(getattr(command, "approver", None) or getattr(command, "started_by", None)
               or getattr(command, "by", "") or "")


def _message(incident_id: str, command: Any, issued: int, nonce: str) -> bytes:
    body = {k: v for k, v in dataclasses.asdict(command).items() if k != PROOF_FIELD}
    return json.dumps({"v": VERSION, "incident": incident_id, "command": type(command).__name__, "body": body,
                       "issued": issued, "nonce": nonce}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def sign(key: SigningKey, incident_id: str, command: Any, now: float | None = None) -> str:
    """The proof for `command` (with every field but the proof set) sent to incident `incident_id`."""
    issued = int(time.time() if now is None else now)
    nonce = secrets.token_urlsafe(12)
    signature = Ed25519PrivateKey.from_private_bytes(key.seed).sign(_message(incident_id, command, issued, nonce))
    return ".".join((VERSION, key.key_id, str(issued), nonce, base64.urlsafe_b64encode(signature).decode()))


@dataclass(frozen=True)
class Verdict:
    problem: str | None
    nonce: str = ""
    issued: int = 0


def check(proof: str, trusted: Mapping[str, str], incident_id: str, command: Any, now: float,
          used: Mapping[str, int]) -> Verdict:
    """Whether `proof` shows that someone holding a trusted key verified `command` for this incident, recently,
    and that it was not used before (`used`: nonce -> issued, kept by the incident)."""
    who = actor(command)
    if not proof:
        return Verdict(f"{who or 'this person'} is not verified: this deployment takes people's commands only "
                       "through the receiver with a personal token (`incidentctl people token NAME`; the CLI uses "
                       "it when INCIDENTCTL_TOKEN and INCIDENTCTL_RECEIVER_URL are set)")
    parts = proof.split(".")
    if len(parts) != 5 or parts[0] != VERSION or not parts[2].isdigit():
        return Verdict("the identity proof is malformed")
    _, key_id, issued_text, nonce, signature_text = parts
    if key_id not in trusted:
        return Verdict(f"the identity proof is signed with key {key_id!r}, which this incident does not trust")
    issued = int(issued_text)
    if now - issued > MAX_AGE_S:
        return Verdict(f"the identity proof expired ({int(now - issued)} s old; good for {MAX_AGE_S} s): send the "
                       "command again")
    if issued - now > MAX_AHEAD_S:
        return Verdict("the identity proof was issued in the future: check the signer's clock")
    if nonce in used:
        return Verdict("the identity proof was used before: each command is signed for one use")
    try:
        signature = base64.urlsafe_b64decode(signature_text)
        Ed25519PublicKey.from_public_bytes(base64.b64decode(trusted[key_id])).verify(
            signature, _message(incident_id, command, issued, nonce))
    except (InvalidSignature, binascii.Error, ValueError):
        return Verdict(f"the identity proof does not match this command: it was made for another incident or "
                       f"command, or altered (who: {who!r})")
    return Verdict(None, nonce, issued)


def forget_expired(used: dict[str, int], now: float) -> None:
    """Nonces of proofs too old to be accepted anyway need not be remembered."""
    for nonce in [n for n, issued in used.items() if now - issued > MAX_AGE_S + MAX_AHEAD_S]:
        del used[nonce]
