"""A TCP proxy in front of the Temporal dev server that can answer new HTTP/2 streams the way the server does
when a call's deadline passes: RST_STREAM(CANCEL), sent by the remote side before its trailers.

Under load the server's reset reaches the client before the client's own deadline timer fires, and the Rust
client reports `CANCELLED: h2 protocol error: http2 error` (hyper `Reset(StreamId(n), CANCEL, Remote)`), seen in
the h2 frame log of the core SDK (docs/design.md, "Queries nobody answers"). This proxy makes that order certain.

Once `reset_new_streams` is set, every stream the client opens is reset at once and never reaches the server.
The server's HPACK decoder then misses those header blocks, so the connection is fit only to be thrown away
afterwards; the tests use a client of their own for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, RST_STREAM = 0x1, 0x3
CANCEL = 0x8


def _frames(buffer: bytearray) -> list[bytes]:
    """Take the whole frames off the front of `buffer`."""
    frames = []
    while len(buffer) >= 9:
        length = int.from_bytes(buffer[:3], "big")
        if len(buffer) < 9 + length:
            break
        frames.append(bytes(buffer[:9 + length]))
        del buffer[:9 + length]
    return frames


def _stream_of(frame: bytes) -> int:
    return int(struct.unpack(">I", frame[5:9])[0]) & 0x7FFFFFFF


def rst_stream(stream: int, code: int = CANCEL) -> bytes:
    return (4).to_bytes(3, "big") + bytes([RST_STREAM, 0]) + struct.pack(">II", stream, code)


class ResetProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.reset_new_streams = False
        self.resets: list[int] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        to_client = asyncio.Lock()  # frames from the server and the proxy's resets interleave whole
        reset: set[int] = set()
        tasks = [asyncio.create_task(self._upstream(client_reader, server_writer, client_writer, to_client, reset)),
                 asyncio.create_task(self._downstream(server_reader, client_writer, to_client))]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for writer in (client_writer, server_writer):
                with contextlib.suppress(Exception):
                    writer.close()

    async def _upstream(self, reader: asyncio.StreamReader, server: asyncio.StreamWriter,
                        client: asyncio.StreamWriter, to_client: asyncio.Lock, reset: set[int]) -> None:
        server.write(await reader.readexactly(len(PREFACE)))
        buffer = bytearray()
        while chunk := await reader.read(65536):
            buffer += chunk
            for frame in _frames(buffer):
                stream = _stream_of(frame)
                if stream in reset:
                    continue
                if self.reset_new_streams and frame[3] == HEADERS:
                    reset.add(stream)
                    self.resets.append(stream)
                    async with to_client:
                        client.write(rst_stream(stream))
                        await client.drain()
                    continue
                server.write(frame)
            await server.drain()

    async def _downstream(self, reader: asyncio.StreamReader, client: asyncio.StreamWriter,
                          to_client: asyncio.Lock) -> None:
        buffer = bytearray()
        while chunk := await reader.read(65536):
            buffer += chunk
            frames = _frames(buffer)
            async with to_client:
                client.write(b"".join(frames))
                await client.drain()
