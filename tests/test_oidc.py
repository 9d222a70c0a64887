"""OIDC sign-in: a JWT is a person only when signed by a key of the provider's JWKS with an accepted algorithm,
for our issuer and audience, in its time, and its claim is given to someone in the people file.

Unit tests of the verification against a JWKS file (the air-gapped form) and a local JWKS HTTP server (cache,
rotation, floor, timeout); then through the wire: the JWKS server, the real receiver with a signing key, and a
worker that requires verified people."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from temporalio.client import Client

from incidentctl import client as incidents
from incidentctl.identity import new_signing_key, signing_key_line
from incidentctl.intake.oidc import JwksCache, JwksUnavailable, OidcError, OidcSettings, looks_like_jwt, verified_claims
from incidentctl.intake.runner import RunningReceiver, start_receiver
from incidentctl.intake.server import ReceiverAuth
from incidentctl.library import compile_text
from incidentctl.people import PeopleConfigError, load_oidc_subjects, load_token_owners, new_token
from tests.conftest import eventually
from tests.verified_people import gated_runbook, start_proven, strict_worker

ROOT = Path(__file__).resolve().parents[1]

ISSUER, AUDIENCE = "https://idp.example.test", "incidentctl"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
STRANGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SIGNER = new_signing_key("k1")
GATED = gated_runbook("oidc-gated")


def jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    public = private.public_key()
    algorithm = {"RS256": jwt.algorithms.RSAAlgorithm, "ES256": jwt.algorithms.ECAlgorithm,
                 "EdDSA": jwt.algorithms.OKPAlgorithm}[alg]
    return {**algorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"}


def jwks(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(entries)}


PROVIDER_KEYS = jwks(jwk(RSA_KEY, "rsa-1", "RS256"), jwk(EC_KEY, "ec-1", "ES256"), jwk(ED_KEY, "ed-1", "EdDSA"))


def token(email: str = "bob@example.com", key: Any = RSA_KEY, kid: str = "rsa-1", alg: str = "RS256",
          **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "email": email, "iat": now, "exp": now + 300, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm=alg, headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(alg: str, kid: str = "rsa-1", secret: bytes | None = None) -> str:
    """A token made by hand: `none`, or HMAC with `secret` (what an attacker holding the public key can do)."""
    now = int(time.time())
    head = b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    body = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "email": "bob@example.com", "iat": now,
                           "exp": now + 300}).encode())
    signature = b"" if secret is None else hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


@pytest.fixture
def settings(tmp_path: Path) -> OidcSettings:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(PROVIDER_KEYS))
    return OidcSettings(issuer=ISSUER, audience=AUDIENCE, jwks=str(path))


async def verdict(given: str, settings: OidcSettings) -> str:
    """"ok <email>" or the reason the token is refused."""
    try:
        return "ok " + (await verified_claims(given, settings, JwksCache(settings)))["email"]
    except OidcError as exc:
        return str(exc)


# ------------------------------------------------------------------ verification


async def test_valid_tokens_of_each_accepted_algorithm_are_verified(settings: OidcSettings) -> None:
    assert await verdict(token(), settings) == "ok bob@example.com"
    assert await verdict(token(key=EC_KEY, kid="ec-1", alg="ES256"), settings) == "ok bob@example.com"
    assert await verdict(token(key=ED_KEY, kid="ed-1", alg="EdDSA"), settings) == "ok bob@example.com"
    # The audience may be one of several.
    assert await verdict(token(aud=["other", AUDIENCE]), settings) == "ok bob@example.com"


async def test_tokens_out_of_their_time_are_refused(settings: OidcSettings) -> None:
    now = int(time.time())
    assert (await verdict(token(exp=now - 3600), settings)).startswith("expired")
    assert (await verdict(token(nbf=now + 3600), settings)).startswith("not yet valid")
    assert (await verdict(token(iat=now + 3600), settings)).startswith("not yet valid")
    assert "exp" in await verdict(token(exp=None), settings)
    # A little clock skew is forgiven.
    assert await verdict(token(exp=now - 5), settings) == "ok bob@example.com"


async def test_tokens_for_another_audience_or_from_another_issuer_are_refused(settings: OidcSettings) -> None:
    assert (await verdict(token(aud="grafana"), settings)).startswith("audience")
    assert (await verdict(token(iss="https://evil.example.test"), settings)).startswith("issuer")


async def test_unknown_keys_forged_and_tampered_tokens_are_refused(settings: OidcSettings) -> None:
    assert (await verdict(token(key=STRANGER, kid="rsa-9"), settings)).startswith("unknown key")
    assert (await verdict(token(key=STRANGER), settings)).startswith("signature")  # a known kid, another key
    head, body, signature = token(email="mallory@example.com").split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    tampered = f"{head}.{b64(json.dumps({**claims, 'email': 'bob@example.com'}).encode())}.{signature}"
    assert (await verdict(tampered, settings)).startswith("signature")
    assert (await verdict("eyJhbGciOiJSUzI1NiJ9.e30.", settings)).startswith("unknown key")
    assert (await verdict("bm90IGpzb24.e30.c2ln", settings)).startswith("malformed")


async def test_algorithm_confusion_is_refused(settings: OidcSettings) -> None:
    assert "'none' is not accepted" in await verdict(unsigned("none"), settings)
    # HS256 with the provider's public key (in any form an attacker could fetch) as the HMAC secret.
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, json.dumps(PROVIDER_KEYS["keys"][0]).encode()):
        assert "'HS256' is not accepted" in await verdict(unsigned("HS256", secret=secret), settings)
    # An accepted algorithm, but not the one of the key the kid names.
    assert "does not match key 'ec-1'" in await verdict(token(kid="ec-1"), settings)


def test_settings_come_from_the_environment_whole_or_not_at_all() -> None:
    assert OidcSettings.from_env({}) is None
    full = {"INCIDENTCTL_OIDC_ISSUER": ISSUER, "INCIDENTCTL_OIDC_AUDIENCE": AUDIENCE,
            "INCIDENTCTL_OIDC_JWKS_URL": "/etc/jwks.json"}
    assert OidcSettings.from_env(full) == OidcSettings(ISSUER, AUDIENCE, "/etc/jwks.json")
    assert OidcSettings.from_env({**full, "INCIDENTCTL_OIDC_CLAIM": "preferred_username"}).claim == "preferred_username"
    with pytest.raises(ValueError, match="INCIDENTCTL_OIDC_AUDIENCE not set"):
        OidcSettings.from_env({**full, "INCIDENTCTL_OIDC_AUDIENCE": ""})
    assert looks_like_jwt(token()) and not looks_like_jwt(new_token("bob")[0]) and not looks_like_jwt("a.b")


def test_the_people_file_maps_claim_values_to_people_and_keeps_tokens(tmp_path: Path) -> None:
    personal, line = new_token("alice")
    path = tmp_path / "people.yaml"
    path.write_text(f"groups: {{sre: [alice, bob]}}\npeople:\n{line}\n  bob: {{oidc: [bob@example.com, b@ex.org]}}\n"
                    "  carol: {email: carol@example.com}\n")
    assert load_oidc_subjects(path) == {"bob@example.com": "bob", "b@ex.org": "bob", "carol@example.com": "carol"}
    assert list(load_token_owners(path).values()) == ["alice"]
    path.write_text("groups: {sre: [bob]}\npeople:\n  bob: {oidc: [x@example.com]}\n  eve: {email: x@example.com}\n")
    with pytest.raises(PeopleConfigError, match="'x@example.com' is given to both bob and eve"):
        load_oidc_subjects(path)
    path.write_text("groups: {sre: [bob]}\npeople:\n  bob: {oidc: [42]}\n")
    with pytest.raises(PeopleConfigError, match="person 'bob'.*oidc:"):
        load_oidc_subjects(path)


# ------------------------------------------------------------------ the provider's JWKS over HTTP


@dataclass
class Provider:
    """A local JWKS endpoint whose keys a test can rotate; it counts what it served."""

    document: dict[str, Any]
    delay_s: float = 0.0
    fetches: int = 0
    url: str = ""
    runner: web.AppRunner | None = field(default=None, repr=False)

    async def serve(self, request: web.Request) -> web.Response:
        self.fetches += 1
        await asyncio.sleep(self.delay_s)
        return web.json_response(self.document)


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    served = Provider(PROVIDER_KEYS)
    app = web.Application()
    app.router.add_get("/jwks", served.serve)
    served.runner = web.AppRunner(app)
    await served.runner.setup()
    site = web.TCPSite(served.runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    served.url = f"http://127.0.0.1:{port}/jwks"
    yield served
    await served.runner.cleanup()


async def test_keys_are_cached_refetched_on_rotation_but_not_more_often_than_the_floor(provider: Provider) -> None:
    settings = OidcSettings(ISSUER, AUDIENCE, provider.url, refetch_floor_s=3600)
    cache = JwksCache(settings)
    for _ in range(3):
        assert (await verified_claims(token(), settings, cache))["email"] == "bob@example.com"
    assert provider.fetches == 1
    # Made-up kids within the floor do not reach the provider.
    for kid in ("x1", "x2", "x3"):
        with pytest.raises(OidcError, match="unknown key"):
            await verified_claims(token(key=STRANGER, kid=kid), settings, cache)
    assert provider.fetches == 1

    # The provider rotates: a token with the new kid makes the cache fetch again, once.
    rotating = JwksCache(replace(settings, refetch_floor_s=0))
    assert (await verified_claims(token(), settings, rotating))["email"] == "bob@example.com"
    provider.document = jwks(jwk(STRANGER, "rsa-2", "RS256"))
    fetched = provider.fetches
    assert (await verified_claims(token(key=STRANGER, kid="rsa-2"), settings, rotating))["email"]
    assert provider.fetches == fetched + 1
    with pytest.raises(OidcError, match="unknown key 'rsa-1'|key 'rsa-1', which is not in"):
        await verified_claims(token(), settings, rotating)


async def test_a_slow_or_broken_provider_is_a_503_not_a_hang(provider: Provider, tmp_path: Path) -> None:
    provider.delay_s = 3
    settings = OidcSettings(ISSUER, AUDIENCE, provider.url, timeout_s=0.5)
    cache = JwksCache(settings)
    for _ in range(2):  # the second within the floor: not fetched again, still the provider's fault
        with pytest.raises(JwksUnavailable, match="cannot fetch the JWKS"):
            await verified_claims(token(), settings, cache)
    assert provider.fetches == 1
    # Keys already fetched are kept while the provider is down.
    provider.delay_s = 0
    kept = JwksCache(replace(settings, ttl_s=0))
    assert (await verified_claims(token(), settings, kept))["email"] == "bob@example.com"
    provider.delay_s = 3
    assert (await verified_claims(token(), settings, kept))["email"] == "bob@example.com"
    (tmp_path / "bad.json").write_text("{\"keys\": 3}")
    for source in (str(tmp_path / "bad.json"), str(tmp_path / "missing.json")):
        settings = OidcSettings(ISSUER, AUDIENCE, source)
        with pytest.raises(JwksUnavailable, match=source):
            await verified_claims(token(), settings, JwksCache(settings))


# ------------------------------------------------------------------ through the wire


@pytest.fixture
async def strict_queue(client: Client) -> AsyncIterator[str]:
    async with strict_worker(client, SIGNER, "oidc") as queue:
        yield queue


@pytest.fixture
def alice_token(tmp_path: Path, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> str:
    """People: alice by personal token, bob by OIDC sign-in; the receiver's OIDC settings and signing key."""
    personal, line = new_token("alice")
    people = tmp_path / "people.yaml"
    people.write_text(f"groups:\n  sre: [bob]\npeople:\n{line}\n  bob: {{oidc: [bob@example.com]}}\n")
    for name, value in {"INCIDENTCTL_PEOPLE": str(people), "INCIDENTCTL_OIDC_ISSUER": ISSUER,
                        "INCIDENTCTL_OIDC_AUDIENCE": AUDIENCE, "INCIDENTCTL_OIDC_JWKS_URL": provider.url,
                        "INCIDENTCTL_IDENTITY_SIGNING_KEY": signing_key_line(SIGNER)}.items():
        monkeypatch.setenv(name, value)
    return personal


@pytest.fixture
async def receiver(client: Client, strict_queue: str, alice_token: str) -> AsyncIterator[RunningReceiver]:
    running = await start_receiver(client, port=0, auth=ReceiverAuth(token="webhook"), task_queue=strict_queue)
    yield running
    await running.stop()


async def post(receiver: RunningReceiver, credential: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {credential}"}
    async with aiohttp.ClientSession() as session, session.post(receiver.url + path, json=body,
                                                                headers=headers) as response:
        return response.status, await response.json()


async def test_a_signed_in_person_approves_through_the_receiver_and_bad_tokens_are_refused(
        client: Client, strict_queue: str, receiver: RunningReceiver, alice_token: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    incident = await start_proven(client, compile_text(GATED, "gated.yaml"), strict_queue, SIGNER, severity="SEV3")
    await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["pending_approvals"])
    path, approve = f"/incidents/{incident}/approvals", {"decision": "approve"}

    refusals = {
        token(exp=int(time.time()) - 3600): (401, "expired"),
        token(aud="grafana"): (401, "audience"),
        token(iss="https://evil.example.test"): (401, "issuer"),
        token(key=STRANGER, kid="rsa-9"): (401, "unknown key"),
        token(key=STRANGER): (401, "signature"),
        unsigned("none"): (401, "'none' is not accepted"),
        token(email="carol@example.com"): (403, "'carol@example.com' is signed in but belongs to nobody"),
        token(email_verified=False): (403, "has not verified the email"),
    }
    for credential, (status, reason) in refusals.items():
        answer = await post(receiver, credential, path, approve)
        assert answer[0] == status and reason in answer[1]["error"], answer
    assert (await incidents.show_incident(client, incident))["pending_approvals"][0]["votes"] == []
    # The body cannot name someone else; the personal token still works beside sign-in.
    status, answer = await post(receiver, token(), path, {**approve, "approver": "alice"})
    assert status == 403 and "the token is bob's" in answer["error"]
    status, answer = await post(receiver, alice_token, f"/incidents/{incident}/notes", {"text": "watching"})
    assert (status, answer["by"]) == (200, "alice"), answer

    status, answer = await post(receiver, token(), path, approve)
    assert status == 200 and answer["by"] == "bob" and answer["receipt"]["outcome"] == "approved", answer
    shown = await eventually(lambda: incidents.show_incident(client, incident), lambda s: s["status"] == "resolved")
    assert [v["approver"] for v in shown["approvals"]] == ["bob"]
    assert [n["by"] for n in shown["notes"]] == ["alice"]

    # Half the settings is a misconfiguration (503, naming what is missing); none means no sign-in (401).
    monkeypatch.delenv("INCIDENTCTL_OIDC_AUDIENCE")
    status, answer = await post(receiver, token(), f"/incidents/{incident}/notes", {"text": "x"})
    assert status == 503 and "INCIDENTCTL_OIDC_AUDIENCE not set" in answer["error"]
    monkeypatch.delenv("INCIDENTCTL_OIDC_ISSUER")
    monkeypatch.delenv("INCIDENTCTL_OIDC_JWKS_URL")
    status, answer = await post(receiver, token(), f"/incidents/{incident}/notes", {"text": "x"})
    assert status == 401 and "does not take OIDC sign-in tokens" in answer["error"]


async def test_the_cli_sends_a_sign_in_jwt_as_it_sends_a_personal_token(
        client: Client, dev_server, strict_queue: str, receiver: RunningReceiver) -> None:
    incident = await start_proven(client, compile_text(GATED, "gated.yaml"), strict_queue, SIGNER, severity="SEV3")
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address, "INCIDENTCTL_RECEIVER_URL": receiver.url,
           "INCIDENTCTL_TOKEN": token()}
    # Not subprocess.run: the worker shares this event loop and must go on while the CLI waits for it.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "incidentctl.cli", "incident", "note", incident, "--as", "bob", "via sso",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    shown = await incidents.show_incident(client, incident)
    assert [(n["by"], n["text"]) for n in shown["notes"]] == [("bob", "via sso")]
