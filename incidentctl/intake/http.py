"""What every endpoint of the receiver shares: its limits, its app keys, refusals with a reason, whole bodies."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from incidentctl.intake.delivery import AlertIntake, TemporalUnavailable
from incidentctl.intake.payloads import Delivery

log = logging.getLogger("incidentctl.receiver")


@dataclass(frozen=True)
class ReceiverLimits:
    """What one client may take: a slow or idle client is cut off, a flood of them is turned away with 503."""

    max_body_bytes: int = 4 << 20
    # A whole body must arrive within this; headers within header_timeout_s of connecting (or of the last
    # answer on a kept-alive connection).
    body_timeout_s: float = 30.0
    header_timeout_s: float = 15.0
    max_connections: int = 256


INTAKE = web.AppKey("intake", AlertIntake)
LIMITS = web.AppKey("limits", ReceiverLimits)


class Refused(Exception):
    """A request answered with a 4xx (or 503) and a reason; counted by `code`."""

    def __init__(self, status: int, reason: str, code: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.code = status, reason, code


def refuse(intake: AlertIntake, status: int, reason: str, code: str, **extra: Any) -> web.Response:
    intake.metrics.inc("incidentctl_requests_rejected_total", reason=code)
    log.warning("refused %s: %s", status, reason)
    headers = {"Retry-After": "5"} if status == 503 else None
    return web.json_response({"error": reason, **extra}, status=status, headers=headers)


async def read_body(request: web.Request, limits: ReceiverLimits) -> bytes:
    """The whole body (Content-Length or chunked), refusing it as soon as it passes the limit."""
    too_large = Refused(413, f"body larger than {limits.max_body_bytes} bytes", "too_large")
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(408, f"body not received within {limits.body_timeout_s:g} s", "body_timeout") from None
    except (ValueError, ConnectionError, web.HTTPException) as exc:
        raise Refused(400, f"cannot read body: {exc}", "unreadable") from None
    return b"".join(chunks)


async def deliver(intake: AlertIntake, delivery: Delivery, endpoint: str) -> web.Response:
    """Deliver parsed alerts (from any sender) and answer: 200 with the report, 422 when no alert could be taken,
    Refused(503) when nothing durable happened."""
    if delivery.rejected and not delivery.alerts:
        report = intake.reject(delivery)
        reasons = "; ".join(r["reason"] for r in report.rejected[:5])
        return refuse(intake, 422, f"no alert could be accepted: {reasons}", "schema", **report.as_json())
    try:
        report = await intake.deliver(delivery)
    except TemporalUnavailable as exc:
        raise Refused(503, f"not recorded, retry later: {exc}", "temporal_unavailable") from None
    intake.metrics.inc("incidentctl_notifications_total", endpoint=endpoint)
    return web.json_response(report.as_json())
