"""A small, deliberately broken web service for the local demo: unhealthy until it is restarted."""

from __future__ import annotations

import asyncio

from aiohttp import web

from incidentctl.localhttp import serve


class DemoService:
    """Answers /healthz with 503 after a "bad deploy" until POST /admin/restart brings it back."""

    def __init__(self, recover_after_s: float = 1.0) -> None:
        self.healthy = False
        self.restarts = 0
        self.recover_after_s = recover_after_s
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _health(self, _: web.Request) -> web.Response:
        if self.healthy:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "error", "reason": "connection pool exhausted"}, status=503)

    async def _changes(self, _: web.Request) -> web.Response:
        return web.json_response({"last_deploy": {"version": "v2.4.0", "previous": "v2.3.9",
                                                  "minutes_ago": 12, "changed": ["DB_POOL_SIZE: 50 -> 5"]}})

    async def _restart(self, _: web.Request) -> web.Response:
        self.restarts += 1

        async def come_back() -> None:
            await asyncio.sleep(self.recover_after_s)
            self.healthy = True

        asyncio.get_running_loop().create_task(come_back())
        return web.json_response({"restarting": True, "restarts": self.restarts})

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/changes", self._changes)
        app.router.add_post("/admin/restart", self._restart)
        self._runner, self.url = await serve(app, host, port)
        return self.url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
