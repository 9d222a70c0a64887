"""The alert receiver: HTTP in front of AlertIntake.

Bad input gets a 4xx with a reason and is counted; Temporal being unreachable gets a 503 so senders retry
(Alertmanager does); a 200 means every routed alert was durably delivered to its incident.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from incidentctl.intake.delivery import AlertIntake, TemporalUnavailable
from incidentctl.intake.openapi import openapi_document
from incidentctl.intake.payloads import Delivery, PayloadError, parse_alertmanager, parse_single_alert

log = logging.getLogger("incidentctl.receiver")
MAX_BODY_BYTES = 1 << 20
SIGNATURE_HEADER = "X-Incidentctl-Signature"


@dataclass(frozen=True)
class ReceiverAuth:
    """Bearer token and/or HMAC-SHA256 of the body; with neither, only an explicit insecure mode may run."""

    token: str | None = None
    hmac_secret: str | None = None
    insecure: bool = False

    def problem(self, request: web.Request, body: bytes) -> str | None:
        if self.insecure and not (self.token or self.hmac_secret):
            return None
        if self.token:
            given = request.headers.get("Authorization", "")
            if hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return None
        if self.hmac_secret:
            expected = "sha256=" + hmac.new(self.hmac_secret.encode(), body, hashlib.sha256).hexdigest()
            if hmac.compare_digest(request.headers.get(SIGNATURE_HEADER, "").encode(), expected.encode()):
                return None
        return "missing or wrong credentials (Authorization: Bearer <token> or " \
               f"{SIGNATURE_HEADER}: sha256=<hmac of body>)"


INTAKE = web.AppKey("intake", AlertIntake)
AUTH = web.AppKey("auth", ReceiverAuth)


def _refuse(intake: AlertIntake, status: int, reason: str, code: str) -> web.Response:
    intake.metrics.inc("incidentctl_requests_rejected_total", reason=code)
    log.warning("refused %s: %s", status, reason)
    return web.json_response({"error": reason}, status=status)


async def _body(request: web.Request, intake: AlertIntake, auth: ReceiverAuth) -> tuple[Any, bytes] | web.Response:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _refuse(intake, 413, f"body larger than {MAX_BODY_BYTES} bytes", "too_large")
    try:
        raw = await request.content.read(MAX_BODY_BYTES + 1)
    except (ValueError, ConnectionError) as exc:
        return _refuse(intake, 400, f"cannot read body: {exc}", "unreadable")
    if len(raw) > MAX_BODY_BYTES:
        return _refuse(intake, 413, f"body larger than {MAX_BODY_BYTES} bytes", "too_large")
    problem = auth.problem(request, raw)
    if problem:
        return _refuse(intake, 401, problem, "unauthorized")
    if request.content_type != "application/json":
        return _refuse(intake, 415, f"content type must be application/json, not {request.content_type!r}",
                       "content_type")
    try:
        return json.loads(raw), raw
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _refuse(intake, 400, f"body is not valid JSON: {exc}", "malformed_json")


def _alert_handler(parse: Callable[[Any], Delivery], endpoint: str
                   ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        intake: AlertIntake = request.app[INTAKE]
        began = time.perf_counter()
        try:
            body = await _body(request, intake, request.app[AUTH])
            if isinstance(body, web.Response):
                return body
            try:
                delivery = parse(body[0])
            except PayloadError as exc:
                return _refuse(intake, 422, str(exc), "schema")
            try:
                report = await intake.deliver(delivery)
            except TemporalUnavailable as exc:
                return _refuse(intake, 503, f"not recorded, retry later: {exc}", "temporal_unavailable")
            intake.metrics.inc("incidentctl_notifications_total", endpoint=endpoint)
            return web.json_response(report.as_json())
        finally:
            intake.metrics.inc("incidentctl_request_seconds_sum", time.perf_counter() - began)
            intake.metrics.inc("incidentctl_request_seconds_count")

    return handle


async def _approve(request: web.Request) -> web.Response:
    """POST /incidents/{id}/approvals: the same validated update as `incidentctl incident approve`."""
    from incidentctl.client import IncidentError, decide
    from workflows.model import ApprovalDecision

    intake = request.app[INTAKE]
    body = await _body(request, intake, request.app[AUTH])
    if isinstance(body, web.Response):
        return body
    data = body[0]
    if (not isinstance(data, dict) or not isinstance(data.get("approver"), str)
            or data.get("decision") not in ("approve", "reject")
            or not isinstance(data.get("step", ""), str) or not isinstance(data.get("comment", ""), str)):
        return _refuse(intake, 422, 'body must be {"approver": str, "decision": "approve"|"reject", '
                                    '"step"?: str, "comment"?: str}', "schema")
    decision = ApprovalDecision(approver=data["approver"], approve=data["decision"] == "approve",
                                step=data.get("step", ""), comment=data.get("comment", ""))
    try:
        receipt = await decide(intake.client, request.match_info["incident"], decision)
    except IncidentError as exc:
        text = str(exc)
        status = 404 if text.startswith("no incident") else 503 if "cannot reach" in text else 409
        return _refuse(intake, status, text, "approval_refused" if status == 409 else "approval_failed")
    return web.json_response(receipt.__dict__)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "runbooks_routed": len(request.app[INTAKE].router.routes)})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[INTAKE].metrics.render(), content_type="text/plain")


async def _unrouted(request: web.Request) -> web.Response:
    intake: AlertIntake = request.app[INTAKE]
    problem = request.app[AUTH].problem(request, b"")
    if problem and request.app[AUTH].token:
        return _refuse(intake, 401, problem, "unauthorized")
    return web.json_response(list(intake.unrouted))


async def _openapi(_: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def create_app(intake: AlertIntake, auth: ReceiverAuth) -> web.Application:
    if not (auth.token or auth.hmac_secret or auth.insecure):
        raise ValueError("the receiver needs INCIDENTCTL_RECEIVER_TOKEN or INCIDENTCTL_RECEIVER_HMAC_SECRET "
                         "(or --insecure for local development)")
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[INTAKE] = intake
    app[AUTH] = auth
    app.router.add_post("/alertmanager", _alert_handler(parse_alertmanager, "alertmanager"))
    app.router.add_post("/alerts", _alert_handler(parse_single_alert, "alerts"))
    app.router.add_get("/alerts/unrouted", _unrouted)
    app.router.add_post("/incidents/{incident}/approvals", _approve)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/openapi.json", _openapi)
    return app
