"""Serving an aiohttp app on a local port (0 picks a free one) and knowing its URL."""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0,
                **runner_options: Any) -> tuple[web.AppRunner, str]:
    """Start `app`; returns its runner (call `cleanup()` to stop) and `http://host:port`."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{host}:{bound}"
