"""Raw header pairs and asyncio write flow control, shared by both sides of a connection."""

from __future__ import annotations

import asyncio

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
