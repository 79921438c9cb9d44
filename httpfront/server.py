"""A lean HTTP/1.1 server: an asyncio protocol on ``httptools``, as uvicorn's is.

Used by the router and the edge node. A request needs no request or response objects:
the client's head is parsed once (llhttp), handed to the handler with the raw header
pairs, and the answer is written as bytes. Measured on these machines this costs a
fraction of aiohttp's server machinery (bench/README.md, Router and Edge node). One request
at a time per connection: a pipelined next request waits (reading pauses) until the
current answer is written. Bodies stream in with flow control; ``Expect: 100-continue`` is
answered at once; a malformed request gets 400, a head over ``max_head_bytes`` 431, a head
too slow 408, CONNECT and upgrade requests 501, an HTTP/0.9 request line 400, each before
any handler sees it, and that connection closes; nothing else is affected. A connection that
closes with part of a request unread (an early 413, a rejected head) closes lingering:
FIN after the answer, the rest read and dropped for up to ``LINGER_S``, so no reset can
destroy the answer on its way. Idle and stalled
connections are closed by one sweeper per server (``ClientTimeouts``), not by a timer per
request. The request and its answer's writer are in ``httpfront.messages``. A bodiless
request is first offered to the server's ``fast_path``, which may answer it from the
callbacks (no task: the router's ``router.fastpath``, the edge node's synchronous
pipeline); otherwise, and for every request with a body, the handler runs as a task.

Answers the fast path gives (``send_now``) are queued and written once the event loop has
run every callback that was ready: one write per connection per loop pass, not one per
answer as each is made. Under load a pass answers many connections, and each write to a
waiting client wakes it, which on these VMs means an inter-processor interrupt; with the
writes together at the end of the pass the client is still busy reading the first when the
rest arrive. Measured under ``wrk -c50``, the edge node's system time per request fell from
~17 to ~5 µs and its throughput rose by ~40% (bench/README.md, "Edge node throughput").
With one request in flight the answer leaves in the same loop pass, a few µs later. Every
other write, close or abort on a connection comes after what it has queued.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, cast

import httptools

from httpfront.flow import RawHeaders, WriteFlowControl
from httpfront.messages import (
    BODY_HIGH_WATER,
    FastPath,
    FrontRequest,
    Handler,
    ResponseWriter,
    Serve,
    reason_phrase,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_HEAD_BYTES = 64 * 1024
# After an answer that leaves part of the request unread (an early 413, a rejected head),
# the rest is read and dropped for up to this long before the connection closes: closing a
# socket with unread data sends a reset, and the client could lose the answer with it
# (nginx's lingering close, aiohttp's lingering time).
LINGER_S = 5.0
INTERNAL_ERROR = b'{"error": "internal_error", "message": "the server failed unexpectedly"}'
UPGRADE_REFUSED = "CONNECT and protocol upgrades (Upgrade: websocket, h2c, ...) are not supported"
HTTP09_REFUSED = "HTTP/0.9 requests are not supported: send HTTP/1.0 or HTTP/1.1"
# The lengths of the fields that say whether a request has a body and how it comes.
_BODY_FIELD_LENGTHS = frozenset(len(name) for name in (b"content-length", b"transfer-encoding", b"expect"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTimeouts:
    """How long a client may take: to send a request head, to keep sending a body (between
    bytes), and to sit idle on a kept-alive connection (nginx: client_header_timeout,
    client_body_timeout, keepalive_timeout)."""

    head_s: float = 30.0
    body_s: float = 30.0
    idle_s: float = 75.0

    def __post_init__(self) -> None:
        if min(self.head_s, self.body_s, self.idle_s) <= 0:
            raise ValueError("client timeouts must be positive")

    @property
    def sweep_s(self) -> float:
        """How often connections are checked: often enough to keep every timeout within 50%."""
        return min(1.0, self.head_s / 2, self.body_s / 2, self.idle_s / 2)


class _ClientConnection(WriteFlowControl):
    """One client connection: parse, dispatch one request at a time, write the answer."""

    def __init__(self, server: FrontendServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._loop = asyncio.get_running_loop()
        # Deadlines are checked by the server's sweeper, not a timer per request (the hot path).
        self._last_read = self._loop.time()
        self._head_started: float | None = None
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
        self._lingering_since: float | None = None
        # A refused request behind pipelined ones still being served: answered after them.
        self._refusal: _RefusedError | None = None
        self._outbox: list[bytes] = []  # answers send_now queued, written by flush()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A protocol over TCP gets a full transport (asyncio's or uvloop's; uvloop's do not
        # subclass asyncio.Transport, so no isinstance check).
        self._transport = cast("asyncio.Transport", transport)
        self._server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        if self._lingering_since is not None or self._refusal is not None:
            return  # the rest of an answered (or refused) request: dropped
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(_RefusedError(501, "not_implemented", UPGRADE_REFUSED))
        except httptools.HttpParserError as exc:
            # httptools wraps what a callback raises (as the context): a refused request, or
            # the head-size check, which shows as a flag.
            refused = exc.__context__
            limit = self._server.max_head_bytes
            if isinstance(refused, _RefusedError):
                self._refuse(refused)
            elif self._head_bytes > limit:
                self._refuse(_RefusedError(431, "bad_request", f"request head exceeds {limit} bytes"))
            else:
                self._refuse(_RefusedError(400, "bad_request", f"malformed HTTP request: {exc}"))
        else:
            if self._head_started is not None and self._http09_line(data):
                self._refuse(_RefusedError(400, "bad_request", HTTP09_REFUSED))

    def _http09_line(self, data: bytes) -> bool:
        """An HTTP/0.9 request line alone (``GET /x`` CRLF, as such a client sends it): llhttp
        waits for a head that never comes, so without this the client would wait for the head
        timeout. Its URL is followed by the line's end, and no version was ever parsed on
        the connection (llhttp keeps the last one; before any it reads 0.0)."""
        url = self._url
        return (
            bool(url)
            and (url + b"\n" in data or url + b"\r\n" in data)
            and self._parser.get_http_version() == "0.0"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._outbox.clear()
        self._server.connections.discard(self)
        for request in self._pending:
            request._wake()
        self._release_writers()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._head_started = self._last_read
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
        self._head_started = None
        version = self._parser.get_http_version()
        # Refused here, before any handler sees the request: answered once, then closed. After
        # an upgrade's head the bytes are another protocol's, so no handler may answer it first.
        if self._parser.should_upgrade():  # CONNECT, or Connection: upgrade with Upgrade: X
            raise _RefusedError(501, "not_implemented", UPGRADE_REFUSED)
        if version == "0.9":  # a request line without a version: answered 400, as aiohttp does
            raise _RefusedError(400, "bad_request", HTTP09_REFUSED)
        request = FrontRequest(self, self._parser.get_method().decode("ascii"), self._url, self._headers)
        request.version = version
        request.keep_alive = self._parser.should_keep_alive()
        for name, value in self._headers:
            if len(name) not in _BODY_FIELD_LENGTHS:
                continue  # not one of the three below: no need to lower-case it
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
        fast = self._server.fast_path
        if fast is not None and not request.body_exists:
            try:
                if fast(request, self):
                    return  # answered from the callbacks; done() follows
            except Exception:
                # Raised inside the parser's callback, it would read as a malformed request.
                logger.exception(
                    "the fast path failed on %s %r; serving it as a task", request.method, request.target
                )
        if request.expect_continue and request.body_exists and self._transport is not None:
            self.flush()
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._server.spawn(self._serve(request))

    # what the fast path needs (httpfront.messages.ClientLink)

    def send_now(self, data: bytes) -> None:
        if not self.closed and self._transport is not None:
            if not self._outbox:
                self._server.flush_soon(self)
            self._outbox.append(data)

    def flush(self) -> None:
        """Write what ``send_now`` queued; every other write and close comes after it."""
        outbox = self._outbox
        if outbox and self._transport is not None and not self.closed:
            self._transport.write(outbox[0] if len(outbox) == 1 else b"".join(outbox))
        outbox.clear()

    def done(self, request: FrontRequest) -> None:
        self._finished(request)

    def continue_async(self, request: FrontRequest, serve: Serve) -> None:
        self._server.spawn(self._serve(request, serve))

    async def _serve(self, request: FrontRequest, serve: Serve | None = None) -> None:
        writer = ResponseWriter(self, head_only=request.method == "HEAD")
        try:
            if serve is None:
                await self._server.handler(request, writer)
            else:
                await serve(writer)
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
        refusal = self._refusal
        if refusal is not None and not self._pending:
            self._refusal = None
            self._reject(refusal.status, refusal.message, kind=refusal.kind)
            return
        if not request.fully_read:
            self._linger()  # an unread body is still on the wire: no further request can follow
            return
        if not self.keep_alive:
            self.close()  # after what is queued
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
        self.flush()
        self._transport.write(data)
        await self.drain()

    def abort(self) -> None:
        self._outbox.clear()
        if self._transport is not None:
            self._transport.abort()
        self.closed = True

    def close(self) -> None:
        self.flush()
        if self._transport is not None and (not self.closed or self._lingering_since is not None):
            self._transport.close()
        self.closed = True

    def check_deadlines(self, now: float, timeouts: ClientTimeouts) -> None:
        """Called by the sweeper: end connections whose client is too slow, or idle too long."""
        if self._lingering_since is not None and now - self._lingering_since > LINGER_S:
            self.abort()
        if self.closed:
            return
        if self._head_started is not None and now - self._head_started > timeouts.head_s:
            self._reject(408, f"the request head did not arrive within {timeouts.head_s:g}s")
        elif not self._pending and now - self._last_read > timeouts.idle_s:
            self.close()
        elif (
            self._parsing is not None
            and not self._parsing.fully_sent
            and now - self._last_read > timeouts.body_s
        ):
            logger.info("client %s sent no body bytes for %gs; closing", self.peer, timeouts.body_s)
            self.abort()  # the handler reading the body sees the client gone

    def _refuse(self, refusal: _RefusedError) -> None:
        """Answer a request the parser refused, and close; after the answers still owed to
        earlier pipelined requests (served as tasks), so that each gets its own, in order.
        A refusal inside the body of the request being served is answered at once."""
        if self._pending and self._parsing is None:
            self._refusal = refusal
            self._head_started = None  # no head timeout: the refused head is answered later
            self._pause_reading()
            return
        self._reject(refusal.status, refusal.message, kind=refusal.kind)

    def _reject(self, status: int, message: str, *, kind: str = "bad_request") -> None:
        if self._transport is None or self.closed:
            return
        body = json.dumps({"error": kind, "message": message}).encode()
        self.flush()
        self._transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%b" % (status, reason_phrase(status).encode(), len(body), body)
        )
        self._linger()

    def _linger(self) -> None:
        """Answered, but the client may still be sending: say we are done (FIN), drop what
        still arrives, and close when the client does or after ``LINGER_S`` (the sweeper)."""
        assert self._transport is not None
        self.flush()
        self._resume_reading()
        self.closed = True  # nothing more is written or dispatched
        self._lingering_since = self._loop.time()
        self._parsing = None
        if self._transport.can_write_eof():
            self._transport.write_eof()
        else:
            self._transport.close()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._server.max_head_bytes:
            raise _HeadTooLargeError  # stops the parser; data_received answers 431

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self.closed and self._refusal is None:
            self._transport.resume_reading()
            self._reading_paused = False


class _HeadTooLargeError(Exception):
    pass


class _RefusedError(Exception):
    """Raised from a parser callback: the request is answered ``status`` with a JSON
    ``{"error": kind, "message": message}`` and the connection closes."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


class FrontendServer:
    """Listens and serves until closed; in-flight requests get ``grace_s`` to finish."""

    def __init__(
        self,
        handler: Handler,
        timeouts: ClientTimeouts | None = None,
        *,
        fast_path: FastPath | None = None,
        max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
    ) -> None:
        self.handler = handler
        self.fast_path = fast_path
        self.max_head_bytes = max_head_bytes
        self.timeouts = timeouts or ClientTimeouts()
        self.connections: set[_ClientConnection] = set()
        self._unflushed: list[_ClientConnection] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def flush_soon(self, conn: _ClientConnection) -> None:
        """Have ``conn.flush()`` called once the loop has run every ready callback."""
        if not self._unflushed:
            asyncio.get_running_loop().call_soon(self._flush_all)
        self._unflushed.append(conn)

    def _flush_all(self) -> None:
        unflushed, self._unflushed = self._unflushed, []
        for conn in unflushed:
            conn.flush()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="router-request")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        """Listen on ``host:port``; ``reuse_port``: beside other processes' listeners on the same
        port (SO_REUSEPORT: the kernel spreads connections over them, as nginx's workers)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ClientConnection(self), host, port, backlog=1024, reuse_port=reuse_port or None
        )
        self._sweeper = loop.create_task(self._sweep(), name="router-client-deadlines")
        # uvloop's Server.sockets is a list where typeshed says tuple; read untyped, so that
        # the compiled module (tools.accel) does not check the annotation.
        sockets: Any = cast("Any", self._server).sockets
        address = sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.timeouts.sweep_s)
            now = loop.time()
            for conn in list(self.connections):
                conn.check_deadlines(now, self.timeouts)

    async def close(self, grace_s: float) -> None:
        """Stop listening, let in-flight requests finish (up to ``grace_s``), close every connection."""
        if self._server is None:
            return
        self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for conn in list(self.connections):
            conn.close()
        await self._server.wait_closed()
