"""Raw header pairs, asyncio write flow control and body iteration, shared by both sides
of a connection (the server's client side, the router's upstream side)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

# Heads as parsed: (name, value) byte pairs in arrival order, names as the peer wrote them.
RawHeaders = list[tuple[bytes, bytes]]


class WriteFlowControl(asyncio.Protocol):
    """asyncio's write flow control for a protocol: ``drain()`` waits while the transport's
    buffer is over its high-water mark, and returns at once when the connection is gone."""

    _write_ready: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        if self._write_ready is None or self._write_ready.done():
            self._write_ready = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._release_writers()

    def _release_writers(self) -> None:
        if self._write_ready is not None and not self._write_ready.done():
            self._write_ready.set_result(None)

    async def drain(self) -> None:
        if self._write_ready is not None and not self._write_ready.done():
            await self._write_ready


class BodyChunks:
    """An async iterator over a body: ``next_chunk()`` until it returns ``b""``.

    A class rather than an async generator, which mypyc (tools.accel compiles the modules
    that use it) does not compile.
    """

    __slots__ = ("_next_chunk",)

    def __init__(self, next_chunk: Callable[[], Awaitable[bytes]]) -> None:
        self._next_chunk = next_chunk

    def __aiter__(self) -> BodyChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._next_chunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk
