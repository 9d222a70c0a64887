"""POST /sns: an Amazon SNS HTTPS subscription. CloudWatch alarms arrive as SNS Notifications.

Every message is checked before anything else happens: its topic must be on the allow-list (SNS signs the
messages of anyone's topic, so the signature alone proves nothing about whose alarm it is), its timestamp
recent, its signature SNS's. Then a SubscriptionConfirmation is confirmed by fetching its SubscribeURL (on a
trusted SNS host only), a Notification goes through the same intake as an Alertmanager alert, and an
UnsubscribeConfirmation is logged (fetching its URL would subscribe again).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from incidentctl.intake.cloud_labels import parse_time
from incidentctl.intake.cloudwatch import parse_alarm
from incidentctl.intake.http import INTAKE, LIMITS, Refused, deliver, read_body, refuse
from incidentctl.intake.payloads import PayloadError, decode_json
from incidentctl.intake.sns_signature import (
    DEFAULT_TRUSTED_HOST,
    CertificateCache,
    CertificateUnavailable,
    SignatureRefused,
    SnsTrust,
    verify,
)

log = logging.getLogger("incidentctl.receiver")
TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
REQUIRED = ("Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature",
            "SigningCertURL")
# SNS retries a failed delivery for up to an hour with a custom delivery policy (about 20 s by default); a
# signed message older than this is a copy, not a retry. Clocks may differ a little the other way.
MAX_AGE_S = 3600.0
MAX_CLOCK_AHEAD_S = 300.0
MAX_CONFIRMATION_BYTES = 64 << 10
_SUBSCRIPTION_ARN = re.compile(r"<SubscriptionArn>([^<]{1,2048})</SubscriptionArn>")


@dataclass(frozen=True)
class SnsConfig:
    """Which topics may post, and where their certificates come from. No topics: the endpoint is off."""

    topic_arns: tuple[str, ...] = ()  # exact ARNs, or shell-style patterns (arn:aws:sns:*:123456789012:alarms-*)
    trust: SnsTrust = field(default_factory=SnsTrust)
    max_age_s: float = MAX_AGE_S

    def topic_allowed(self, arn: str) -> bool:
        return any(fnmatch.fnmatchcase(arn, pattern) for pattern in self.topic_arns)


def sns_config_from_env() -> SnsConfig:
    """INCIDENTCTL_SNS_TOPIC_ARNS (comma-separated), INCIDENTCTL_SNS_CERT_HOST (a regular expression) and
    INCIDENTCTL_SNS_CA_BUNDLE (a PEM file) configure the endpoint."""
    topics = tuple(t.strip() for t in os.environ.get("INCIDENTCTL_SNS_TOPIC_ARNS", "").split(",") if t.strip())
    host = os.environ.get("INCIDENTCTL_SNS_CERT_HOST") or DEFAULT_TRUSTED_HOST
    try:
        re.compile(host)
    except re.error as exc:
        raise ValueError(f"INCIDENTCTL_SNS_CERT_HOST is not a regular expression: {exc}") from None
    bundle = os.environ.get("INCIDENTCTL_SNS_CA_BUNDLE") or None
    if bundle and not os.path.isfile(bundle):
        raise ValueError(f"INCIDENTCTL_SNS_CA_BUNDLE {bundle!r} is not a file")
    return SnsConfig(topic_arns=topics, trust=SnsTrust(trusted_host=host, ca_bundle=bundle))


@dataclass
class SnsEndpoint:
    config: SnsConfig
    certificates: CertificateCache

    @classmethod
    def of(cls, config: SnsConfig) -> SnsEndpoint:
        return cls(config, CertificateCache(config.trust))


SNS = web.AppKey("sns", SnsEndpoint)


def _envelope(raw: bytes, header_type: str | None) -> dict[str, Any]:
    try:
        message = decode_json(raw)
    except PayloadError as exc:
        raise Refused(400, str(exc), "malformed_json") from None
    if not isinstance(message, dict):
        raise Refused(400, "an SNS message is a JSON object", "schema")
    missing = [name for name in REQUIRED if not isinstance(message.get(name), str)]
    if message.get("Type") in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        missing += [name for name in ("SubscribeURL", "Token") if not isinstance(message.get(name), str)]
    if message.get("Subject") is not None and not isinstance(message.get("Subject"), str):
        missing.append("Subject")
    if missing:
        raise Refused(400, f"not an SNS message: {', '.join(missing)} missing or not a string", "schema")
    if message["Type"] not in TYPES:
        raise Refused(400, f"SNS message Type {message['Type']!r} is not one of {', '.join(TYPES)}", "schema")
    if header_type is not None and header_type != message["Type"]:
        raise Refused(400, f"x-amz-sns-message-type {header_type!r} differs from the message's Type", "schema")
    return message


def _age_problem(message: dict[str, Any], max_age_s: float) -> str | None:
    try:
        sent = parse_time(message["Timestamp"], "Timestamp")
    except PayloadError as exc:
        return str(exc)
    age = (datetime.now(UTC) - sent).total_seconds()
    if age > max_age_s or age < -MAX_CLOCK_AHEAD_S:
        return (f"Timestamp {message['Timestamp']} is {age:.0f} s from the receiver's clock; messages older than "
                f"{max_age_s:g} s (or ahead by more than {MAX_CLOCK_AHEAD_S:g} s) are refused as replays")
    return None


async def _confirm(endpoint: SnsEndpoint, message: dict[str, Any]) -> web.Response:
    url = message["SubscribeURL"]
    problem = endpoint.config.trust.url_problem(url, "SubscribeURL")
    topic_in_url = parse_qs(urlsplit(url).query).get("TopicArn", [message["TopicArn"]])[0]
    if problem is None and topic_in_url != message["TopicArn"]:
        problem = "SubscribeURL names another topic than the message"
    if problem:
        raise Refused(403, problem, "sns_untrusted_url")
    timeout = aiohttp.ClientTimeout(total=endpoint.config.trust.fetch_timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url, ssl=endpoint.config.trust.ssl_context(), allow_redirects=False) as response:
            body = (await response.content.read(MAX_CONFIRMATION_BYTES)).decode("utf-8", "replace")
            status = response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Refused(503, f"could not confirm the subscription: {exc or type(exc).__name__}",
                      "sns_confirm_failed") from None
    if status != 200:
        raise Refused(503, f"could not confirm the subscription: SNS answered HTTP {status}", "sns_confirm_failed")
    found = _SUBSCRIPTION_ARN.search(body)
    log.warning("confirmed the SNS subscription to %s", message["TopicArn"])
    return web.json_response({"confirmed": message["TopicArn"], "subscription_arn": found[1] if found else None})


async def handle(request: web.Request) -> web.Response:
    intake, endpoint = request.app[INTAKE], request.app[SNS]
    try:
        raw = await read_body(request, request.app[LIMITS])
        if not endpoint.config.topic_arns:
            raise Refused(403, "SNS intake is off: no topic is allowed (INCIDENTCTL_SNS_TOPIC_ARNS)", "sns_off")
        message = _envelope(raw, request.headers.get("x-amz-sns-message-type"))
        if not endpoint.config.topic_allowed(message["TopicArn"]):
            raise Refused(403, f"topic {message['TopicArn']} is not on the allow-list", "sns_topic")
        problem = _age_problem(message, endpoint.config.max_age_s)
        if problem:
            raise Refused(403, problem, "sns_stale")
        try:
            await verify(message, endpoint.certificates)
        except SignatureRefused as exc:
            raise Refused(403, f"SNS signature refused: {exc}", "sns_signature") from None
        except CertificateUnavailable as exc:
            raise Refused(503, f"SNS signing certificate unavailable, retry later: {exc}", "sns_certificate") from None
        intake.metrics.inc("incidentctl_sns_messages_total", type=message["Type"])
        if message["Type"] == "SubscriptionConfirmation":
            return await _confirm(endpoint, message)
        if message["Type"] == "UnsubscribeConfirmation":
            log.warning("SNS says the subscription to %s was removed; nothing more will arrive from it",
                        message["TopicArn"])
            return web.json_response({"unsubscribed": message["TopicArn"]})
        try:
            delivery = parse_alarm(message["Message"], message["TopicArn"])
        except PayloadError as exc:
            raise Refused(422, str(exc), "schema") from None
        delivery.group_key = json.dumps({"topic": message["TopicArn"]})
        return await deliver(intake, delivery, "sns")
    except Refused as refused:
        return refuse(intake, refused.status, refused.reason, refused.code)
