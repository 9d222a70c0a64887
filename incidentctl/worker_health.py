"""The worker's health endpoint, for Kubernetes probes and compose health checks.

    GET /healthz   200 while the process is doing its job: waiting for Temporal, polling with a live worker, or
                   letting running steps finish after SIGTERM (a liveness probe must not cut that short); 503 once
                   the worker has failed. Answered from the worker's own event loop, so a wedged loop fails it
                   too (liveness).
    GET /readyz    200 only when the worker polls and Temporal answers a health check now (readiness: a rolling
                   update waits for the new worker to be connected before it stops an old one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from incidentctl.localhttp import serve

# A probe answers within Kubernetes' default probe timeout (1 s) even when Temporal is slow.
TEMPORAL_CHECK_TIMEOUT = timedelta(seconds=0.8)


@dataclass
class WorkerState:
    """What the probes report; the worker's main loop moves it along."""

    phase: str = "connecting"  # connecting -> polling -> stopping
    client: Client | None = None
    worker: Worker | None = None

    def polling(self, client: Client, worker: Worker) -> None:
        self.phase, self.client, self.worker = "polling", client, worker

    def alive(self) -> bool:
        if self.phase in ("connecting", "stopping"):
            return True
        return self.worker is not None and self.worker.is_running

    def ready(self) -> bool:
        return self.phase == "polling" and self.alive()

    async def temporal_answers(self) -> bool:
        if self.client is None:
            return False
        try:
            return await self.client.service_client.check_health(timeout=TEMPORAL_CHECK_TIMEOUT)
        except (RPCError, RuntimeError):
            return False


STATE = web.AppKey("state", WorkerState)


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"phase": state.phase}, status=200 if state.alive() else 503)


async def _readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ready = state.ready() and await state.temporal_answers()
    return web.json_response({"phase": state.phase, "ready": ready}, status=200 if ready else 503)


def parse_bind_address(value: str, variable: str) -> tuple[str, int]:
    """`HOST:PORT` (`0.0.0.0:8080`, `:8080`) as (host, port); a clear error naming the variable otherwise."""
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{variable} must be HOST:PORT (e.g. 0.0.0.0:8080), not {value!r}")
    return host or "0.0.0.0", int(port)


async def start_health_server(state: WorkerState, host: str, port: int) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return await serve(app, host, port, access_log=None)
