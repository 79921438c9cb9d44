"""The router's HTTP/1.1 server: an asyncio protocol on ``httptools``, as uvicorn's is.

A proxy's request needs no request or response objects: the client's head is parsed once
(llhttp), handed to the handler with the raw header pairs, and the answer is written as
bytes. Measured on these machines this costs a fraction of aiohttp's server machinery
(bench/README.md, Router). One request at a time per connection: a pipelined next
request waits (reading pauses) until the current answer is written. Bodies stream in
with flow control; ``Expect: 100-continue`` is answered at once; a malformed request gets
400, a head over the limit 431, and the connection closes; nothing else is affected.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from http import HTTPStatus
from typing import Any, cast

import httptools

from router.upstream import RawHeaders, WriteFlowControl

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
BODY_HIGH_WATER = 1024 * 1024
INTERNAL_ERROR = b'{"error": "router_error", "message": "the router failed unexpectedly"}'


class FrontRequest:
    """One client request: its head, and its body as it arrives."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_done",
        "_waiter",
        "body_exists",
        "chunked",
        "content_length",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "peer",
        "target",
        "version",
    )

    def __init__(self, conn: _ClientConnection, method: str, target: bytes, headers: RawHeaders) -> None:
        self._conn = conn
        self.method = method
        self.target = target
        self.headers = headers
        self.peer = conn.peer
        self.version = "1.1"
        self.keep_alive = True
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.body_exists = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._done = True
        self._waiter: asyncio.Future[None] | None = None

    @property
    def path(self) -> str:
        return self.target.split(b"?", 1)[0].decode("latin-1")

    @property
    def query(self) -> str:
        parts = self.target.split(b"?", 1)
        return parts[1].decode("latin-1") if len(parts) > 1 else ""

    def header(self, name: bytes) -> str | None:
        """The first value of header ``name`` (lower case), decoded."""
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    async def body(self) -> AsyncIterator[bytes]:
        """The body as it arrives (read it once)."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered <= BODY_HIGH_WATER // 4:
                    self._conn.body_drained(self)
                yield chunk
                continue
            if self._done:
                return
            if self._conn.closed:
                raise ConnectionResetError("the client closed the connection mid-body")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    @property
    def fully_read(self) -> bool:
        return self._done and not self._chunks

    def _feed(self, chunk: bytes) -> int:
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._wake()
        return self._buffered

    def _end(self) -> None:
        self._done = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class ResponseWriter:
    """Writes one answer: a head, then the body (length-framed, chunked, or none)."""

    __slots__ = ("_chunked", "_conn", "head_only", "started")

    def __init__(self, conn: _ClientConnection, *, head_only: bool) -> None:
        self._conn = conn
        self.head_only = head_only
        self._chunked = False
        self.started = False

    async def start(self, status: int, reason: str, headers: RawHeaders, *, length: int | None) -> None:
        """Write the head; without a ``length`` the body goes chunked."""
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, (reason or _reason(status)).encode("latin-1"))]
        lines.extend(b"%s: %s\r\n" % pair for pair in headers)
        if length is not None:
            lines.append(b"content-length: %d\r\n" % length)
        elif not self.head_only and status >= 200 and status not in {204, 304}:
            self._chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        if not self._conn.keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        self.started = True
        await self._conn.write(b"".join(lines))

    async def write(self, chunk: bytes) -> None:
        if self.head_only or not chunk:
            return
        await self._conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if self._chunked else chunk)

    async def end(self) -> None:
        if self._chunked and not self.head_only:
            await self._conn.write(b"0\r\n\r\n")

    async def respond(self, status: int, headers: RawHeaders, body: bytes, *, reason: str = "") -> None:
        """A whole small answer in one write."""
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, (reason or _reason(status)).encode("latin-1"))]
        lines.extend(b"%s: %s\r\n" % pair for pair in headers)
        lines.append(b"content-length: %d\r\n" % len(body))
        if not self._conn.keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        if not self.head_only:
            lines.append(body)
        self.started = True
        await self._conn.write(b"".join(lines))

    def abort(self) -> None:
        """Cut the connection: the client sees a broken answer (too late for an error status)."""
        self._conn.abort()


Handler = Callable[[FrontRequest, ResponseWriter], Awaitable[None]]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _ClientConnection(WriteFlowControl):
    """One client connection: parse, dispatch one request at a time, write the answer."""

    def __init__(self, server: FrontendServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self.peer = ""
        self._url = b""
        self._headers: RawHeaders = []
        self._head_bytes = 0
        self._parsing: FrontRequest | None = None
        self._pending: collections.deque[FrontRequest] = collections.deque()
        self._reading_paused = False
        self.closed = False
        self.keep_alive = True

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A protocol over TCP gets a full transport (asyncio's or uvloop's; uvloop's do not
        # subclass asyncio.Transport, so no isinstance check).
        self._transport = cast("asyncio.Transport", transport)
        self._server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(501, "protocol upgrades are not proxied")
        except httptools.HttpParserError as exc:
            # httptools wraps what a callback raises: the head-size check shows as a flag.
            if self._head_bytes > MAX_HEAD_BYTES:
                self._reject(431, f"request head exceeds {MAX_HEAD_BYTES} bytes")
            else:
                self._reject(400, f"malformed HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._server.connections.discard(self)
        for request in self._pending:
            request._wake()
        self._release_writers()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._count(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        request = FrontRequest(self, self._parser.get_method().decode("ascii"), self._url, self._headers)
        request.version = self._parser.get_http_version()
        request.keep_alive = self._parser.should_keep_alive()
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"content-length":
                request.content_length = int(value)
                request.body_exists = request.content_length > 0
            elif lower == b"transfer-encoding" and b"chunked" in value.lower():
                request.chunked = request.body_exists = True
            elif lower == b"expect" and value.lower() == b"100-continue":
                request.expect_continue = True
        request._done = not request.body_exists
        self._parsing = request
        self._pending.append(request)
        if len(self._pending) == 1:
            self._dispatch()
        else:
            self._pause_reading()  # pipelined: the next request waits for this answer

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None and self._parsing._feed(body) > BODY_HIGH_WATER:
            self._pause_reading()

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing._end()
            self._parsing = None

    # dispatch

    def _dispatch(self) -> None:
        request = self._pending[0]
        self.keep_alive = request.keep_alive
        if request.expect_continue and request.body_exists and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._server.spawn(self._serve(request))

    async def _serve(self, request: FrontRequest) -> None:
        writer = ResponseWriter(self, head_only=request.method == "HEAD")
        try:
            await self._server.handler(request, writer)
        except ConnectionResetError:
            self.abort()
        except Exception:
            logger.exception("unexpected failure serving %s %r", request.method, request.target)
            if writer.started:
                self.abort()
            else:
                await writer.respond(500, [(b"content-type", b"application/json")], INTERNAL_ERROR)
        finally:
            self._finished(request)

    def _finished(self, request: FrontRequest) -> None:
        self._pending.popleft()
        if self.closed or self._transport is None:
            return
        if not self.keep_alive or not request.fully_read:
            # An unread body is still on the wire: the connection cannot carry another request.
            self._transport.close()
            self.closed = True
            return
        if self._pending:
            self._dispatch()
        self._resume_reading()

    def body_drained(self, request: FrontRequest) -> None:
        if request is self._parsing and len(self._pending) <= 1:
            self._resume_reading()

    async def write(self, data: bytes) -> None:
        if self.closed or self._transport is None:
            raise ConnectionResetError("the client went away")
        self._transport.write(data)
        await self.drain()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self.closed = True

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.close()
        self.closed = True

    def _reject(self, status: int, message: str) -> None:
        if self._transport is None or self.closed:
            return
        body = json.dumps({"error": "bad_request", "message": message}).encode()
        self._transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%b" % (status, _reason(status).encode(), len(body), body)
        )
        self._transport.close()
        self.closed = True

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLargeError  # stops the parser; data_received answers 431

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self.closed:
            self._transport.resume_reading()
            self._reading_paused = False


class _HeadTooLargeError(Exception):
    pass


class FrontendServer:
    """Listens and serves until closed; in-flight requests get ``grace_s`` to finish."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: set[_ClientConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="router-request")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _ClientConnection(self), host, port, backlog=1024)
        address = self._server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def close(self, grace_s: float) -> None:
        """Stop listening, let in-flight requests finish (up to ``grace_s``), close every connection."""
        if self._server is None:
            return
        self._server.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for conn in list(self.connections):
            conn.close()
        await self._server.wait_closed()
