"""Slack's request signature (v0): proof that a request comes from our Slack app, recently, and once.

Slack signs `v0:{X-Slack-Request-Timestamp}:{raw body}` with HMAC-SHA256 and the app's signing secret and sends
`X-Slack-Signature: v0=<hex>`. A request older than REPLAY_WINDOW_S (or that far in the future) is refused, and
so is a signature seen before: a captured click cannot be sent again.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from incidentctl.intake.auth import REPLAY_WINDOW_S, SeenSignatures

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
VERSION = "v0"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack adds (for tests and tools that stand in for Slack)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(secret, stamp, body)}


def problem(secret: str, timestamp: str, given: str, body: bytes, now: float, seen: SeenSignatures) -> str | None:
    """Why the request is not from our Slack app (None: it is, and this is its first use)."""
    timestamp = timestamp.strip()
    if not timestamp.isdigit() or abs(now - int(timestamp)) > REPLAY_WINDOW_S:
        return (f"{TIMESTAMP_HEADER} must be the Unix time Slack signed at, within {REPLAY_WINDOW_S} s of the "
                "receiver's clock (a late copy of a click is refused)")
    expected = signature(secret, timestamp, body)
    if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode()):
        return (f"wrong {SIGNATURE_HEADER}: not signed with INCIDENTCTL_SLACK_SIGNING_SECRET (the Slack app's "
                "signing secret)")
    if not seen.first_use(expected, now):
        return "this Slack request was already received: a click counts once"
    return None
