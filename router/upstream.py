"""Keep-alive HTTP/1.1 connections to edge nodes: the proxy's lean upstream client.

aiohttp's client costs ~300 µs of CPU per proxied request on these machines (request and
response objects, tracing hooks, cookie and redirect machinery), more than the edge node's
own work; a proxy needs none of it. This client writes the request head in one write,
parses the answer with ``httptools`` (llhttp, as uvicorn does) and hands the body on as
it arrives, with flow control both ways. Connections are pooled per node, newest first.

Failures are typed for the proxy's retry rules: :class:`UpstreamConnectError` (the node
never saw the request), :class:`UpstreamClosedError` (the connection died before a full
answer), :class:`UpstreamProtocolError`, and :class:`UpstreamTimeoutError`.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Iterable
from typing import Protocol, cast

import httptools

from httpfront.flow import BodyChunks, RawHeaders, WriteFlowControl
from router.errors import (
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)

# Reading pauses while this much of an answer waits for the downstream client.
HIGH_WATER = 1024 * 1024
IDLE_TIMEOUT_S = 30.0  # below aiohttp's 75 s, so the node never closes a connection we are about to use
MAX_IDLE_PER_NODE = 256


class ExchangeListener(Protocol):
    """Who hears about an answer from the protocol callbacks instead of awaiting it (the
    proxy's fast path, ``router.fastpath``)."""

    def head_arrived(self, conn: UpstreamConnection) -> None: ...

    def completed(self, conn: UpstreamConnection) -> None: ...

    def failed(self, conn: UpstreamConnection, error: Exception) -> None: ...


class UpstreamResponse:
    """The answer's status and headers, and its body as it arrives."""

    __slots__ = ("_conn", "headers", "reason", "status")

    def __init__(self, conn: UpstreamConnection, status: int, reason: str, headers: RawHeaders) -> None:
        self._conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers

    @property
    def content_length(self) -> int | None:
        return self._conn.content_length

    async def read(self) -> bytes:
        """The whole body."""
        parts = [chunk async for chunk in self.iter_chunks()]
        return b"".join(parts)

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive."""
        return BodyChunks(self._conn.next_chunk)

    def release(self) -> None:
        """Back to the pool if the answer was read whole and the connection may be kept."""
        self._conn.finish()


class UpstreamConnection(WriteFlowControl):
    """One connection to a node; one request at a time (HTTP/1.1 without pipelining)."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._head: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._chunk_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._headers: RawHeaders = []
        self._reason = ""
        self._complete = False
        self._keep_alive = False
        self._error: Exception | None = None
        self._listener: ExchangeListener | None = None
        self.closed = False
        self.content_length: int | None = None
        self.idle_since = 0.0
        self.head_only = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A protocol over TCP gets a full transport (asyncio's or uvloop's; uvloop's do not
        # subclass asyncio.Transport, so no isinstance check).
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(
                UpstreamProtocolError("the edge node switched protocols, which the router does not proxy")
            )
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"the edge node sent a malformed answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        if not self._complete:
            reason = f": {exc}" if exc else ""
            self._fail(UpstreamClosedError(f"the edge node closed the connection{reason}"))
        self._release_writers()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_status(self, status: bytes) -> None:
        self._reason = status.decode("latin-1")

    def on_headers_complete(self) -> None:
        # llhttp forgets this once the message completes: ask now.
        self._keep_alive = self._parser.should_keep_alive()
        for name, value in self._headers:
            if name.lower() == b"content-length":
                self.content_length = int(value)
        if self.head_only:
            self._complete = True  # no body follows, whatever the headers say
        if self._head is not None and not self._head.done():
            self._head.set_result(None)
        if self._listener is not None:
            self._listener.head_arrived(self)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and self._transport is not None and not self._reading_paused:
            self._transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.completed(self)
        else:
            self._wake()

    # the proxy's side

    def begin_exchange(self, head: bytes, listener: ExchangeListener) -> None:
        """Send a bodiless request whose answer ``listener`` hears of from the callbacks."""
        assert self._transport is not None
        self._listener = listener
        self._transport.write(head)

    def detach(self) -> None:
        """The listener hands the rest of the answer to an awaiting reader."""
        self._listener = None

    @property
    def status(self) -> int:
        return self._parser.get_status_code()

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def headers(self) -> RawHeaders:
        return self._headers

    def take_body(self) -> bytes:
        """The whole body of a completed answer."""
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    def answer(self) -> UpstreamResponse:
        """The answer so far, for a reader that awaits the rest."""
        return UpstreamResponse(self, self.status, self._reason, self._headers)

    async def send(self, head: bytes, body: AsyncIterator[bytes] | None, *, chunked: bool) -> None:
        assert self._transport is not None
        self._head = self._loop.create_future()
        self._transport.write(head)
        if body is None:
            return
        head_seen = self._head
        async for chunk in body:
            if head_seen.done() or self.closed:
                # The node answered before taking the whole body (an early 413, as nginx
                # and aiohttp also send) or went away (connection_lost failed the head).
                # Its answer, or that failure, is what response() returns; the unsent rest
                # of the body would be read as a next request, so the connection is not kept.
                self._keep_alive = False
                return
            if chunk:
                self._transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await self.drain()
        if chunked and not self.closed:
            self._transport.write(b"0\r\n\r\n")

    async def response(self, timeout_s: float) -> UpstreamResponse:
        assert self._head is not None
        try:
            async with asyncio.timeout(timeout_s):
                await self._head
        except TimeoutError:
            self.abort()
            raise UpstreamTimeoutError(f"no answer within {timeout_s:g}s") from None
        return self.answer()

    async def next_chunk(self) -> bytes:
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._complete:
                return b""
            self._chunk_waiter = self._loop.create_future()
            try:
                async with asyncio.timeout(self._pool.read_timeout_s):
                    await self._chunk_waiter
            except TimeoutError:
                self.abort()
                raise UpstreamTimeoutError(
                    f"the edge node sent nothing for {self._pool.read_timeout_s:g}s mid-answer"
                ) from None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._reading_paused and self._buffered <= HIGH_WATER // 4 and self._transport is not None:
            self._transport.resume_reading()
            self._reading_paused = False
        return chunk

    def finish(self) -> None:
        reusable = self._complete and not self._chunks and self._keep_alive and not self.head_only
        if reusable and not self.closed:
            self._reset()
            self._pool.put_back(self)
        else:
            self.abort()

    def abort(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.abort()
        self.closed = True

    def _reset(self) -> None:
        self._head = None
        self._headers = []
        self._reason = ""
        self._complete = False
        self._keep_alive = False
        self._error = None
        self._listener = None
        self.content_length = None
        self.head_only = False

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        if self._head is not None and not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved: a request abandoned mid-way logs nothing
        listener, self._listener = self._listener, None
        self._wake()
        self.abort()
        if listener is not None:
            listener.failed(self, error)

    def _wake(self) -> None:
        if self._chunk_waiter is not None and not self._chunk_waiter.done():
            self._chunk_waiter.set_result(None)


class UpstreamPool:
    """Keep-alive connections to every node, by (host, port)."""

    def __init__(self, *, connect_timeout_s: float, read_timeout_s: float) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self._keys: dict[UpstreamConnection, tuple[str, int]] = {}

    async def request(
        self,
        host: str,
        port: int,
        head: bytes,
        body: AsyncIterator[bytes] | None = None,
        *,
        chunked: bool = False,
        head_only: bool = False,
    ) -> UpstreamResponse:
        """Send one request and return its answer's head; the caller reads and releases it."""
        conn = self.idle_connection(host, port) or await self._connect(host, port)
        conn.head_only = head_only
        try:
            await conn.send(head, body, chunked=chunked)
            return await conn.response(self.read_timeout_s)
        except BaseException:
            conn.abort()
            raise

    def idle_connection(self, host: str, port: int) -> UpstreamConnection | None:
        """A kept-alive connection to the node that is free now, if there is one."""
        idle = self._idle.get((host, port))
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_TIMEOUT_S:
                return conn
            conn.abort()
        return None

    async def _connect(self, host: str, port: int) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(lambda: UpstreamConnection(self), host, port)
        except TimeoutError:
            raise UpstreamConnectError(
                f"connect to {host}:{port} timed out after {self.connect_timeout_s:g}s"
            ) from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
        self._keys[conn] = (host, port)
        return conn

    def put_back(self, conn: UpstreamConnection) -> None:
        key = self._keys.get(conn)
        if key is None:
            conn.abort()
            return
        idle = self._idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE_PER_NODE:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        key = self._keys.pop(conn, None)
        if key is not None:
            idle = self._idle.get(key)
            if idle and conn in idle:
                idle.remove(conn)

    def close(self) -> None:
        for conn in list(self._keys):
            conn.abort()
        self._idle.clear()
        self._keys.clear()


def request_head(method: str, target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The request line and header block, ready to write."""
    lines = [b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), target)]
    lines.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
    lines.append(b"\r\n")
    return b"".join(lines)
