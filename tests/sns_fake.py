"""A local stand-in for Amazon SNS: a test CA, SNS's signing key and certificate, and an HTTPS server on
127.0.0.1 that serves the certificate and answers ConfirmSubscription, as sns.<region>.amazonaws.com does.

Messages are signed as SNS signs them (RSA PKCS#1 v1.5 over the canonical string, SHA1 or SHA256), so the
receiver's real verification path runs; only the trusted host pattern and the CA bundle point here.
"""

from __future__ import annotations

import base64
import datetime as dt
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from incidentctl.intake.sns_signature import string_to_sign

HOST = "localhost"
CERT_PATH = "/SimpleNotificationService-test.pem"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, *,
                 ca: bool = False, hosts: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(HOST), x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class FakeSns:
    """What a test needs: the CA bundle to trust, the URLs, a signer, and what the server was asked."""

    directory: Path
    signing_key: rsa.RSAPrivateKey = field(default_factory=_key)
    base_url: str = ""
    confirmations: list[dict[str, str]] = field(default_factory=list)
    certificate_fetches: int = 0

    def __post_init__(self) -> None:
        ca_key, tls_key = _key(), _key()
        ca = _certificate("incidentctl test CA", ca_key, "incidentctl test CA", ca_key, ca=True)
        self.ca_bundle = self.directory / "ca.pem"
        self.ca_bundle.write_bytes(_pem(ca))
        tls = _certificate(HOST, tls_key, "incidentctl test CA", ca_key, hosts=True)
        (self.directory / "tls.pem").write_bytes(_pem(tls))
        (self.directory / "tls.key").write_bytes(tls_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.signing_pem = _pem(_certificate("sns.amazonaws.com", self.signing_key, "incidentctl test CA", ca_key))

    @property
    def cert_url(self) -> str:
        return self.base_url + CERT_PATH

    def sign(self, message: dict[str, Any], version: str = "2", *, key: rsa.RSAPrivateKey | None = None,
             cert_url: str | None = None) -> dict[str, Any]:
        """`message` with SignatureVersion, SigningCertURL and a Signature as SNS makes them."""
        unsigned = {**message, "SignatureVersion": version, "SigningCertURL": cert_url or self.cert_url}
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or self.signing_key).sign(string_to_sign(unsigned), padding.PKCS1v15(), algorithm)
        return {**unsigned, "Signature": base64.b64encode(signature).decode()}

    def notification(self, topic_arn: str, text: str, *, timestamp: str | None = None,
                     subject: str | None = "ALARM") -> dict[str, Any]:
        message = {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic_arn,
                   "Message": text, "Timestamp": timestamp or now_iso(),
                   "UnsubscribeURL": f"{self.base_url}/?Action=Unsubscribe"}
        if subject is not None:
            message["Subject"] = subject
        return message

    def confirmation(self, topic_arn: str, kind: str = "SubscriptionConfirmation",
                     subscribe_url: str | None = None) -> dict[str, Any]:
        token = uuid.uuid4().hex
        return {"Type": kind, "MessageId": str(uuid.uuid4()), "Token": token, "TopicArn": topic_arn,
                "Message": f"You have chosen to subscribe to the topic {topic_arn}.",
                "SubscribeURL": subscribe_url
                or f"{self.base_url}/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}",
                "Timestamp": now_iso()}

    async def _certificate(self, _: web.Request) -> web.Response:
        self.certificate_fetches += 1
        return web.Response(body=self.signing_pem, content_type="application/x-pem-file")

    async def _action(self, request: web.Request) -> web.Response:
        if request.query.get("Action") != "ConfirmSubscription":
            return web.Response(status=400, text="unexpected action")
        self.confirmations.append(dict(request.query))
        arn = f"{request.query['TopicArn']}:{uuid.uuid4()}"
        return web.Response(text=("<ConfirmSubscriptionResponse><ConfirmSubscriptionResult>"
                                  f"<SubscriptionArn>{arn}</SubscriptionArn></ConfirmSubscriptionResult>"
                                  "</ConfirmSubscriptionResponse>"), content_type="text/xml")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeSns]:
        app = web.Application()
        app.router.add_get(CERT_PATH, self._certificate)
        app.router.add_get("/", self._action)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.directory / "tls.pem", self.directory / "tls.key")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"https://127.0.0.1:{port}"
        try:
            yield self
        finally:
            await runner.cleanup()


def now_iso(offset_s: float = 0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
