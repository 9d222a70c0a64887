"""Who may post to the receiver: alert senders, by a bearer token or an HMAC signature.

The signature covers a timestamp, the method, the path (with its query) and the body, so a signed request is
good once, for that endpoint, within REPLAY_WINDOW_S: a copy sent again, sent to another path (another
incident's approvals), or sent late is refused. A sender retrying after a 503 signs again with a new timestamp.
People's commands are not alert senders: they need a personal token (people_api.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from aiohttp import web

SIGNATURE_HEADER = "X-Incidentctl-Signature"
TIMESTAMP_HEADER = "X-Incidentctl-Timestamp"
REPLAY_WINDOW_S = 300
# Signatures remembered to refuse replays; past this many (an attack), the oldest are forgotten first.
MAX_REMEMBERED = 100_000


def _utf8(text: str) -> bytes:
    # Header values may hold undecodable bytes (kept as surrogates): they can only fail to match.
    return text.encode("utf-8", "replace")


def bearer_token(request: web.Request) -> str:
    """The token of an `Authorization: Bearer ...` header ("" without one). RFC 9110: the scheme is
    case-insensitive ("bearer" and "Bearer" are the same)."""
    scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def basic_password(request: web.Request) -> str:
    """The password of an `Authorization: Basic ...` header ("" without one); the user name is not checked."""
    scheme, _, encoded = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
    return decoded.partition(":")[2]


def signing_input(timestamp: str, method: str, path: str, body: bytes) -> bytes:
    return f"{timestamp}\n{method.upper()}\n{path}\n".encode() + body


def sign(secret: str, method: str, path: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers a sender adds: what `incidentctl` tools and tests use, and what docs/alerts.md describes."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), signing_input(stamp, method, path, body), hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"sha256={digest}"}


class SeenSignatures:
    def __init__(self) -> None:
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, signature: str, now: float) -> bool:
        with self._lock:
            while self._expiry and (next(iter(self._expiry.values())) < now
                                    or len(self._expiry) >= MAX_REMEMBERED):
                self._expiry.popitem(last=False)
            if signature in self._expiry:
                return False
            self._expiry[signature] = now + 2 * REPLAY_WINDOW_S
            return True


@dataclass(frozen=True)
class ReceiverAuth:
    """Bearer token and/or HMAC signature; with neither, only an explicit insecure mode may run."""

    token: str | None = None
    hmac_secret: str | None = None
    insecure: bool = False
    seen: SeenSignatures = field(default_factory=SeenSignatures, compare=False, repr=False)

    def problem(self, request: web.Request, body: bytes) -> str | None:
        if self.insecure and not (self.token or self.hmac_secret):
            return None
        if self.token:
            given = bearer_token(request)
            if given and hmac.compare_digest(_utf8(given), _utf8(self.token)):
                return None
        if self.hmac_secret and request.headers.get(SIGNATURE_HEADER):
            return self._signature_problem(request, body)
        return (f"missing or wrong credentials (Authorization: Bearer <token>, or {TIMESTAMP_HEADER} and "
                f"{SIGNATURE_HEADER}: sha256=<hmac of timestamp, method, path and body>)")

    def webhook_problem(self, request: web.Request, body: bytes) -> str | None:
        """As `problem`, also taking the token as a Basic auth password or an `auth_token` query parameter:
        for senders that cannot set a bearer header (Cloud Monitoring's basic-auth and token webhooks)."""
        if self.token:
            for given in (basic_password(request), request.query.get("auth_token", "")):
                if given and hmac.compare_digest(_utf8(given), _utf8(self.token)):
                    return None
        return self.problem(request, body)

    def _signature_problem(self, request: web.Request, body: bytes) -> str | None:
        assert self.hmac_secret is not None
        stamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
        now = time.time()
        if not stamp.isdigit() or abs(now - int(stamp)) > REPLAY_WINDOW_S:
            return (f"{TIMESTAMP_HEADER} must be the Unix time of signing, within {REPLAY_WINDOW_S} s of the "
                    "receiver's clock (a late copy of a signed request is refused)")
        expected = hmac.new(self.hmac_secret.encode(), signing_input(stamp, request.method, request.path_qs, body),
                            hashlib.sha256).hexdigest()
        prefix, _, given = request.headers.get(SIGNATURE_HEADER, "").strip().partition("=")
        if prefix.lower() != "sha256" or not hmac.compare_digest(_utf8(given.lower()), expected.encode()):
            return "wrong signature (it covers the timestamp, the method, the path with its query, and the body)"
        if not self.seen.first_use(expected, now):
            return "this signed request was already received: sign each request (and each retry) anew"
        return None
