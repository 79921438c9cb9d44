"""Relaying TCP connections byte for byte, with flow control, and cutting them on a partition.

Every accepted client connection becomes a ``Pipe``: the client's half and, once the
upstream answers, the upstream's half: two asyncio Protocols that write whatever they read
into each other's transport. When one side's write buffer fills (``pause_writing``), the
other side stops reading until it drains (``resume_writing``), so memory stays bounded by
asyncio's write-buffer limits whatever the speed of either peer. An EOF is passed on as a
half-close (``write_eof``), a close as a close, a reset as a reset.

A partition resets connections the way ``iptables -j REJECT --reject-with tcp-reset`` does:
SO_LINGER 0, then abort, so each peer gets an RST at once, not a FIN after buffered data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from faultrelay.config import LinkSpec, host_port
from faultrelay.errors import ListenError

logger = logging.getLogger(__name__)

_LINGER_ZERO = struct.pack("ii", 1, 0)  # struct linger {l_onoff=1, l_linger=0}: close sends RST


def reset_transport(transport: asyncio.Transport) -> None:
    """Abort ``transport`` so that its peer sees a TCP reset."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    transport.abort()


@dataclass(slots=True)
class LinkCounters:
    """What one link has carried since the relay started."""

    connections_total: int = 0
    connections_reset: int = 0  # by a fault, open or at accept
    upstream_failures: int = 0
    bytes_to_upstream: int = 0
    bytes_to_client: int = 0


class _Half(asyncio.Protocol):
    """One side of a pipe: forwards what it reads to the other side's transport."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.transport: asyncio.Transport | None = None
        self.peer: _Half = self  # set by Pipe right after construction
        self.eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer.transport
        if peer is None or peer.is_closing():
            return False
        if self.peer.eof:  # both directions are finished: close both
            peer.close()
            return False
        peer.write_eof()
        return True  # keep our transport open: the other direction still flows

    def pause_writing(self) -> None:
        self.peer.set_reading(on=False)

    def resume_writing(self) -> None:
        self.peer.set_reading(on=True)

    def set_reading(self, *, on: bool) -> None:
        transport = self.transport
        # After EOF there is nothing left to read: resuming would only read the EOF again.
        if transport is None or transport.is_closing() or self.eof:
            return
        if on:
            transport.resume_reading()
        else:
            transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pipe.half_lost(self, exc)


class _ClientHalf(_Half):
    def __init__(self, pipe: Pipe) -> None:
        super().__init__(pipe)
        self.early: list[bytes] = []
        self.forward: Callable[[bytes], object] = self._hold

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.pipe.accepted()

    def data_received(self, data: bytes) -> None:
        self.pipe.counters.bytes_to_upstream += len(data)
        self.forward(data)

    def _hold(self, data: bytes) -> None:
        # Reading is paused until the upstream answers; an event loop that still delivers
        # a chunk meanwhile gets it kept, in order, not dropped.
        self.early.append(data)
        self.set_reading(on=False)


class _UpstreamHalf(_Half):
    forward: Callable[[bytes], object]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.pipe.upstream_connected()

    def data_received(self, data: bytes) -> None:
        self.pipe.counters.bytes_to_client += len(data)
        self.forward(data)


class Pipe:
    """One relayed connection: the client's half, and the upstream's once connected."""

    def __init__(self, link: LinkRelay) -> None:
        self.link = link
        self.counters = link.counters
        self.client = _ClientHalf(self)
        self.upstream = _UpstreamHalf(self)
        self.client.peer, self.upstream.peer = self.upstream, self.client
        self._connecting: asyncio.Task[None] | None = None
        self._closed = False

    def accepted(self) -> None:
        client = self.client.transport
        assert client is not None
        self.counters.connections_total += 1
        if self.link.is_cut():
            self.counters.connections_reset += 1
            self._closed = True
            reset_transport(client)
            return
        client.pause_reading()  # nothing to forward to until the upstream answers
        self.link.pipes.add(self)
        self._connecting = asyncio.get_running_loop().create_task(
            self._connect(), name=f"faultrelay-connect-{self.link.spec.name}"
        )

    async def _connect(self) -> None:
        spec = self.link.spec
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.link.connect_timeout_s):
                await loop.create_connection(lambda: self.upstream, spec.upstream_host, spec.upstream_port)
        except (OSError, TimeoutError) as exc:
            self.counters.upstream_failures += 1
            logger.info(
                "link %s: upstream %s unreachable (%s); closing the client", spec.name, spec.upstream, exc
            )
            if self.client.transport is not None:
                self.client.transport.abort()  # promptly: the client reconnects with back-off
        finally:
            self._connecting = None
            self._forget_if_done()

    def upstream_connected(self) -> None:
        client, upstream = self.client.transport, self.upstream.transport
        assert client is not None
        assert upstream is not None
        if self._closed or client.is_closing():
            upstream.abort()
            return
        self.upstream.forward = client.write
        self.client.forward = upstream.write
        for chunk in self.client.early:
            upstream.write(chunk)
        self.client.early.clear()
        client.resume_reading()

    def half_lost(self, half: _Half, exc: Exception | None) -> None:
        if half is self.client:
            self._closed = True
            if self._connecting is not None:
                self._connecting.cancel()
        other = half.peer.transport
        if other is not None and not other.is_closing():
            if exc is None:
                other.close()  # after what is buffered: a close is passed on as a close
            else:
                reset_transport(other)
        self._forget_if_done()

    def reset(self) -> None:
        """Reset both sides at once (a partition)."""
        self._closed = True
        self.counters.connections_reset += 1
        self.link.pipes.discard(self)  # gone now, though the transports report so a moment later
        if self._connecting is not None:
            self._connecting.cancel()
        for half in (self.client, self.upstream):
            if half.transport is not None and not half.lost:
                reset_transport(half.transport)

    def abort(self) -> None:
        """Drop both sides (the relay is stopping)."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        for half in (self.client, self.upstream):
            if half.transport is not None and not half.lost:
                half.transport.abort()

    def _forget_if_done(self) -> None:
        upstream_done = self.upstream.lost or (self.upstream.transport is None and self._connecting is None)
        if self.client.lost and upstream_done:
            self.link.pipes.discard(self)


class LinkRelay:
    """One link: its listener, its open pipes, its counters."""

    def __init__(self, spec: LinkSpec, *, is_cut: Callable[[str], bool], connect_timeout_s: float) -> None:
        self.spec = spec
        self.connect_timeout_s = connect_timeout_s
        self.counters = LinkCounters()
        self.pipes: set[Pipe] = set()
        self.address = ""
        self._is_cut = is_cut
        self._server: asyncio.Server | None = None

    def is_cut(self) -> bool:
        return self._is_cut(self.spec.name)

    async def start(self, host: str) -> str:
        """Listen on ``host`` at the link's port; return the bound ``host:port``."""
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: Pipe(self).client, host, self.spec.listen_port, reuse_address=True
            )
        except OSError as exc:
            raise ListenError(
                what=f"link {self.spec.name}", host=host, port=self.spec.listen_port, exc=exc
            ) from exc
        bound_host, port = self._server.sockets[0].getsockname()[:2]
        self.address = host_port(bound_host, port)
        return self.address

    def reset_all(self) -> int:
        """Reset every open connection; return how many there were."""
        pipes = list(self.pipes)
        for pipe in pipes:
            pipe.reset()
        return len(pipes)

    async def close(self) -> None:
        """Stop listening, then drop every open connection."""
        if self._server is None:
            return
        self._server.close()
        for pipe in list(self.pipes):
            pipe.abort()
        await self._server.wait_closed()
