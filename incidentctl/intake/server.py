"""The alert receiver: HTTP in front of AlertIntake.

Every answer is a 2xx, a 4xx with a reason, or a 503 when nothing durable happened (Temporal unreachable, no
worker, a bug of ours), so senders retry: Alertmanager drops a notification it gets a 4xx for, so a 4xx is
kept for bodies that can never succeed. A 200 means every routed alert was durably delivered to its
incident; alerts of an accepted notification that could not be taken are listed in the answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from incidentctl import tracing
from incidentctl.intake import people_api, slack_api, sns, web_ui
from incidentctl.intake.auth import ReceiverAuth
from incidentctl.intake.cloud_monitoring import parse_notification
from incidentctl.intake.delivery import AlertIntake
from incidentctl.intake.http import INTAKE, LIMITS, ReceiverLimits, Refused, deliver, read_body
from incidentctl.intake.http import refuse as _refuse
from incidentctl.intake.openapi import openapi_document
from incidentctl.intake.payloads import Delivery, PayloadError, decode_json, parse_alertmanager, parse_single_alert

log = logging.getLogger("incidentctl.receiver")
AUTH = web.AppKey("auth", ReceiverAuth)


async def _body(request: web.Request, url_credentials: bool = False) -> tuple[Any, bytes]:
    """The authenticated JSON body, or Refused. `url_credentials`: also Basic auth and `?auth_token=`, for
    senders that cannot set a bearer header (Cloud Monitoring)."""
    raw = await read_body(request, request.app[LIMITS])
    auth = request.app[AUTH]
    problem = auth.webhook_problem(request, raw) if url_credentials else auth.problem(request, raw)
    if problem:
        raise Refused(401, problem, "unauthorized")
    if request.content_type != "application/json":
        raise Refused(415, f"content type must be application/json, not {request.content_type!r}", "content_type")
    try:
        return decode_json(raw), raw
    except PayloadError as exc:
        raise Refused(400, str(exc), "malformed_json") from None


def _alert_handler(parse: Callable[[Any], Delivery], endpoint: str, url_credentials: bool = False
                   ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        intake: AlertIntake = request.app[INTAKE]
        began = time.perf_counter()
        try:
            try:
                delivery = parse((await _body(request, url_credentials))[0])
            except PayloadError as exc:
                raise Refused(422, str(exc), "schema") from None
            return await deliver(intake, delivery, endpoint)
        except Refused as refused:
            return _refuse(intake, refused.status, refused.reason, refused.code)
        finally:
            intake.metrics.inc("incidentctl_request_seconds_sum", time.perf_counter() - began)
            intake.metrics.inc("incidentctl_request_seconds_count")

    return handle


@web.middleware
async def _never_500(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
    """A bug of ours must not lose alerts: answer 503 (senders retry) and log it for the operator."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence, logged with its traceback
        log.exception("internal error answering %s %s", request.method, request.path)
        return _refuse(request.app[INTAKE], 503, f"internal error, nothing recorded, retry later "
                                                 f"({type(exc).__name__})", "internal_error")


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "runbooks_routed": len(request.app[INTAKE].router.routes)})


def _read_only(answer: Callable[[web.Request], web.Response]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A GET endpoint for senders and operators: the same credentials as the alert endpoints."""
    async def handle(request: web.Request) -> web.Response:
        problem = request.app[AUTH].problem(request, b"")
        if problem:
            return _refuse(request.app[INTAKE], 401, problem, "unauthorized")
        return answer(request)
    return handle


def _metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[INTAKE].metrics.render(), content_type="text/plain")


def _unrouted(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[INTAKE].unrouted))


def _openapi(_: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def create_app(intake: AlertIntake, auth: ReceiverAuth, limits: ReceiverLimits | None = None,
               sns_config: sns.SnsConfig | None = None) -> web.Application:
    if not (auth.token or auth.hmac_secret or auth.insecure):
        raise ValueError("the receiver needs INCIDENTCTL_RECEIVER_TOKEN or INCIDENTCTL_RECEIVER_HMAC_SECRET "
                         "(or --insecure for local development)")
    limits = limits or ReceiverLimits()
    # Outermost, the request's span (when tracing is on) sees the answer _never_500 gives.
    traced = tracing.http_middleware()
    app = web.Application(client_max_size=limits.max_body_bytes,
                          middlewares=[*([traced] if traced else []), _never_500])
    app[INTAKE] = intake
    app[AUTH] = auth
    app[LIMITS] = limits
    app[sns.SNS] = sns.SnsEndpoint.of(sns_config or sns.SnsConfig())
    app.router.add_post("/alertmanager", _alert_handler(parse_alertmanager, "alertmanager"))
    app.router.add_post("/alerts", _alert_handler(parse_single_alert, "alerts"))
    # Cloud alarms: SNS proves itself by signing (and the topic allow-list), Cloud Monitoring like a webhook.
    app.router.add_post("/sns", sns.handle)
    app.router.add_post("/gcm", _alert_handler(parse_notification, "gcm", url_credentials=True))
    app.router.add_get("/alerts/unrouted", _read_only(_unrouted))
    # People's commands (approvals, notes, severity, resolve, close, ...), each as the person a token names.
    app.router.add_post("/incidents", people_api.start)
    app.router.add_post("/incidents/{incident}/{command}", people_api.command)
    app.router.add_get("/incidents/{incident}", people_api.show)
    # Slack's Approve/Reject buttons, as the person whose Slack user id clicked (signed by Slack, not by a token).
    app.router.add_post("/slack/interactions", slack_api.interactions_handler())
    # The web page: the same people, signed in with the same tokens (a cookie), and the same commands.
    web_ui.add_routes(app)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _read_only(_metrics))
    app.router.add_get("/openapi.json", _read_only(_openapi))
    return app
