"""Amazon SNS message signatures: the string SNS signs, its signing certificate fetched only from SNS, the check.

SNS signs each message with RSA (SignatureVersion 1: SHA1, 2: SHA256) over "Name\\nValue\\n" of fixed fields in
byte order of their names; the certificate is at SigningCertURL. Anyone can write a message naming a
certificate of their own, so the URL must be https on a trusted host (`sns.<region>.amazonaws.com`), fetched
with TLS verified: trust rests on that connection. Certificates are cached until they expire, so a burst of
alarms costs one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Amazon's SNS endpoints, the China partition's included (sns.cn-north-1.amazonaws.com.cn).
DEFAULT_TRUSTED_HOST = r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
MAX_CERTIFICATE_BYTES = 64 << 10
CACHED_CERTIFICATES = 64


class SignatureRefused(Exception):
    """The message is not proven to come from SNS (HTTP 403), with the reason."""


class CertificateUnavailable(Exception):
    """The trusted host did not give the certificate now: the sender should retry (HTTP 503)."""


@dataclass(frozen=True)
class SnsTrust:
    """Where SNS certificates and confirmation URLs may come from, and the CAs their TLS is checked against."""

    trusted_host: str = DEFAULT_TRUSTED_HOST  # a regular expression the whole host name must match
    ca_bundle: str | None = None  # PEM file; None: the system's CAs
    fetch_timeout_s: float = 10.0

    def url_problem(self, url: Any, what: str) -> str | None:
        if not isinstance(url, str):
            return f"{what} is missing"
        parts = urlsplit(url)
        if parts.scheme != "https":
            return f"{what} must be https, not {url!r}"
        if parts.username or parts.password:
            return f"{what} must not carry credentials"
        if not parts.hostname or not re.fullmatch(self.trusted_host, parts.hostname, re.IGNORECASE):
            return f"{what} host {parts.hostname!r} is not a trusted SNS host ({self.trusted_host})"
        return None

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle)


def string_to_sign(message: dict[str, Any]) -> bytes:
    """The canonical string of an SNS message: its signed fields that are present, as "Name\\nValue\\n"."""
    names = NOTIFICATION_FIELDS if message.get("Type") == "Notification" else CONFIRMATION_FIELDS
    return "".join(f"{name}\n{message[name]}\n" for name in names if message.get(name) is not None).encode()


@dataclass
class _Cached:
    key: rsa.RSAPublicKey
    not_after: float


class CertificateCache:
    """Signing certificates by URL, fetched from trusted hosts only, kept until they expire."""

    def __init__(self, trust: SnsTrust) -> None:
        self.trust = trust
        self._keys: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def public_key(self, url: str) -> rsa.RSAPublicKey:
        problem = self.trust.url_problem(url, "SigningCertURL")
        if problem:
            raise SignatureRefused(problem)
        if not urlsplit(url).path.endswith(".pem"):
            raise SignatureRefused(f"SigningCertURL {url!r} does not name a .pem certificate")
        async with self._lock:  # concurrent messages of one burst wait for the one fetch
            cached = self._keys.get(url)
            if cached and cached.not_after > time.time():
                self._keys.move_to_end(url)
                return cached.key
            certificate = _load(await self._fetch(url), url)
            key = certificate.public_key()
            if not isinstance(key, rsa.RSAPublicKey):
                raise SignatureRefused(f"the certificate at {url} has no RSA key")
            self._keys[url] = _Cached(key, certificate.not_valid_after_utc.timestamp())
            while len(self._keys) > CACHED_CERTIFICATES:
                self._keys.popitem(last=False)
            return key

    async def _fetch(self, url: str) -> bytes:
        self.fetches += 1
        timeout = aiohttp.ClientTimeout(total=self.trust.fetch_timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.get(url, ssl=self.trust.ssl_context(), allow_redirects=False) as response:
                if response.status != 200:
                    raise CertificateUnavailable(f"{url} answered HTTP {response.status}")
                body = await response.content.read(MAX_CERTIFICATE_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise CertificateUnavailable(f"cannot fetch {url}: {exc or type(exc).__name__}") from None
        if len(body) > MAX_CERTIFICATE_BYTES:
            raise SignatureRefused(f"the certificate at {url} is larger than {MAX_CERTIFICATE_BYTES} bytes")
        return body


def _load(pem: bytes, url: str) -> x509.Certificate:
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise SignatureRefused(f"{url} is not a PEM certificate") from None
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SignatureRefused(f"the certificate at {url} is not valid now")
    return certificate


async def verify(message: dict[str, Any], certificates: CertificateCache) -> None:
    """Raise SignatureRefused unless SNS signed exactly these fields (CertificateUnavailable: try later)."""
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise SignatureRefused(f"SignatureVersion must be 1 or 2, not {message.get('SignatureVersion')!r}")
    try:
        signature = base64.b64decode(str(message.get("Signature") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused("Signature is not base64") from None
    if not signature:
        raise SignatureRefused("the message is not signed (raw message delivery is not supported)")
    key = await certificates.public_key(message.get("SigningCertURL"))  # type: ignore[arg-type]
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise SignatureRefused("the signature does not match the message (altered, or not signed by SNS)") from None
