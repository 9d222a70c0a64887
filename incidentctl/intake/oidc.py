"""OIDC sign-in for people's commands: a JWT from the organisation's identity provider, checked against its JWKS.

Only asymmetric algorithms (RS256, ES256, EdDSA) are accepted, and only with a key of the matching type chosen
by the token's `kid`: a token saying `none`, or HS256 "signed" with the provider's public key as the secret
(algorithm confusion), is refused before any key is used. `iss` must equal the configured issuer, `aud` must
contain the configured audience, `exp` is required; `nbf` and `iat` are checked when present; all with
LEEWAY_S for clock skew.

The provider's keys are fetched (or read from a file, for air-gapped installs) with a timeout, kept for
`ttl_s`, and fetched again at once when a token names a key we do not know (the provider rotated), but never
more often than `refetch_floor_s`: a stream of tokens with made-up kids cannot make the receiver hammer the
provider.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt

ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_S = 60
DEFAULT_CLAIM = "email"


class OidcError(Exception):
    """The token is not acceptable (401): the message says why."""


class JwksUnavailable(Exception):
    """The provider's keys cannot be had (503): not the person's fault."""


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks: str  # an https:// (or http://) URL, or a file path
    claim: str = DEFAULT_CLAIM
    ttl_s: float = 600.0
    refetch_floor_s: float = 30.0
    timeout_s: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcSettings | None:
        """None when OIDC sign-in is not configured; a ValueError naming what is missing when half of it is."""
        names = ("INCIDENTCTL_OIDC_ISSUER", "INCIDENTCTL_OIDC_AUDIENCE", "INCIDENTCTL_OIDC_JWKS_URL")
        given = {name: env.get(name, "").strip() for name in names}
        if not any(given.values()):
            return None
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise ValueError(f"OIDC sign-in needs {', '.join(names)}; {', '.join(missing)} not set")
        claim = env.get("INCIDENTCTL_OIDC_CLAIM", "").strip() or DEFAULT_CLAIM
        return cls(issuer=given[names[0]], audience=given[names[1]], jwks=given[names[2]], claim=claim)


def looks_like_jwt(credential: str) -> bool:
    """A compact JWS: three base64url parts (a personal token starts with `ictl_` and has no dots)."""
    parts = credential.split(".")
    return len(parts) == 3 and all(parts[:2]) and not credential.startswith("ictl_")


def _usable_keys(document: Any, source: str) -> dict[str, jwt.PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable(f"the JWKS at {source} is not a JSON object with a `keys` list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        # Symmetric (oct) keys, encryption keys and keys without a kid are never used to verify a sign-in.
        if not isinstance(entry, dict) or entry.get("kty") == "oct" or entry.get("use", "sig") != "sig":
            continue
        if not isinstance(entry.get("kid"), str):
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # a key type we do not take (another provider's experiment) must not hide the others
        if key.algorithm_name in ALGORITHMS:
            keys[entry["kid"]] = key
    return keys


@dataclass
class JwksCache:
    settings: OidcSettings
    _keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    _fetched_at: float | None = None
    _problem: str | None = None  # why the last fetch failed (None when it worked)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def key(self, kid: str) -> jwt.PyJWK:
        async with self._lock:
            now = time.monotonic()
            age = None if self._fetched_at is None else now - self._fetched_at
            stale = age is None or age >= self.settings.ttl_s
            rotated = kid not in self._keys and (age is None or age >= self.settings.refetch_floor_s)
            if stale or rotated:
                await self._refresh(now)
        if kid not in self._keys:
            if self._problem:
                # We could not look for it: the provider's fault (503), not proof the token is bad (401).
                raise JwksUnavailable(self._problem)
            raise OidcError(f"unknown key: the token is signed with key {kid!r}, which is not in the identity "
                            f"provider's JWKS ({self.settings.jwks})")
        return self._keys[kid]

    async def _refresh(self, now: float) -> None:
        # Failures count as fetches too: a provider that is down is not asked more often than one that is up.
        self._fetched_at = now
        try:
            self._keys, self._problem = _usable_keys(await self._document(), self.settings.jwks), None
        except JwksUnavailable as exc:
            # Keep the keys we have: a provider briefly down must not sign everyone out.
            self._problem = str(exc)

    async def _document(self) -> Any:
        source = self.settings.jwks
        try:
            if source.startswith(("https://", "http://")):
                timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
                async with aiohttp.ClientSession(timeout=timeout) as session, session.get(source) as response:
                    if response.status != 200:
                        raise JwksUnavailable(f"the JWKS at {source} answered HTTP {response.status}")
                    return json.loads(await response.read())
            return json.loads(Path(source).read_text(encoding="utf-8"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise JwksUnavailable(f"cannot fetch the JWKS at {source}: {exc or type(exc).__name__}") from None
        except OSError as exc:
            raise JwksUnavailable(f"cannot read the JWKS file {source}: {exc.strerror}") from None
        except ValueError:
            raise JwksUnavailable(f"the JWKS at {source} is not JSON") from None


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise OidcError(f"malformed token: {exc}") from None


async def verified_claims(token: str, settings: OidcSettings, keys: JwksCache) -> dict[str, Any]:
    """The token's claims once its signature, issuer, audience and times hold; OidcError says which did not."""
    header = _header(token)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise OidcError(f"algorithm {alg!r} is not accepted: the token must be signed with one of "
                        f"{', '.join(ALGORITHMS)}")
    if not isinstance(kid, str) or not kid:
        raise OidcError("unknown key: the token names no key (`kid`)")
    key = await keys.key(kid)
    if key.algorithm_name != alg:
        raise OidcError(f"algorithm {alg!r} does not match key {kid!r}, which is a {key.algorithm_name} key")
    try:
        claims = jwt.decode(token, key.key, algorithms=[alg], audience=settings.audience, issuer=settings.issuer,
                            leeway=LEEWAY_S, options={"require": ["exp", "iss", "aud"]})
    except jwt.ExpiredSignatureError:
        raise OidcError("expired: the token's `exp` has passed; sign in again") from None
    except jwt.ImmatureSignatureError as exc:
        raise OidcError(f"not yet valid: {exc}") from None
    except jwt.InvalidAudienceError:
        raise OidcError(f"audience: the token is not for {settings.audience!r}") from None
    except jwt.InvalidIssuerError:
        raise OidcError(f"issuer: the token was not issued by {settings.issuer!r}") from None
    except jwt.InvalidSignatureError:
        raise OidcError(f"signature: the token does not match key {kid!r} (altered, or signed by someone "
                        "else)") from None
    except jwt.PyJWTError as exc:
        raise OidcError(f"invalid token: {exc}") from None
    return claims
