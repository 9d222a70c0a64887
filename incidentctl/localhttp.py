"""Serving an aiohttp app on a local port (0 picks a free one) and knowing its URL, optionally with a cap
on open connections: past it, a new connection is answered 503 at once and closed, so a flood of idle or
slow clients cannot take the file descriptors that real senders need."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from incidentctl.process import stop_on_signals

_BUSY_BODY = json.dumps({"error": "too many open connections, retry later"}).encode()
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                 b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


class _Busy(asyncio.Protocol):
    """Answers 503 and half-closes; what the client still sends is read and dropped, because closing a socket
    with unread data makes the kernel reset the connection, and the client might never see the answer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(BUSY_RESPONSE)
        if transport.can_write_eof():
            transport.write_eof()
        self._closer = asyncio.get_running_loop().call_later(2.0, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        self._closer.cancel()


class CappedSite(web.TCPSite):
    """A TCP site that serves at most `max_connections` connections at a time."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, max_connections: int,
                 on_refused: Callable[[], None] | None = None) -> None:
        super().__init__(runner, host, port)
        self.max_connections = max_connections
        self.on_refused = on_refused

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None

        def protocol() -> asyncio.Protocol:
            if len(server.connections) >= self.max_connections:
                if self.on_refused:
                    self.on_refused()
                return _Busy()
            return server()

        self._server = await asyncio.get_running_loop().create_server(protocol, self._host, self._port,
                                                                      backlog=self._backlog)
        self._bound_port = self._server.sockets[0].getsockname()[1]


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0, *,
                max_connections: int | None = None, on_refused: Callable[[], None] | None = None,
                **runner_options: Any) -> tuple[web.AppRunner, str]:
    """Start `app`; returns its runner (call `cleanup()` to stop) and `http://host:port`."""
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    site = (CappedSite(runner, host, port, max_connections, on_refused) if max_connections
            else web.TCPSite(runner, host, port))
    await site.start()
    return runner, f"http://{host}:{site.port}"


def write_ready_file(path: Path, content: dict[str, Any]) -> None:
    """Whole or absent: the parent polls for the file, and one written in place can be seen empty on a loaded
    machine (`incidentctl dev` once failed with a JSONDecodeError that way)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content))
    os.replace(partial, path)


async def serve_until_stopped(app: web.Application, host: str, port: int, ready_file: Path | None,
                              on_serving: Callable[[str], dict[str, Any]]) -> None:
    """A simulator's process: serve `app` until Ctrl-C or SIGTERM. `on_serving(url)` runs once it serves
    and returns what the ready file says (written last, so the parent reads nothing before it is true)."""
    stop = stop_on_signals()
    runner, url = await serve(app, host, port)
    ready = on_serving(url)
    if ready_file:
        write_ready_file(ready_file, ready)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
