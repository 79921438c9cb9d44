"""One client request and the writer of its answer: what ``httpfront.server`` hands a
handler. Heads are raw ``(name, value)`` byte pairs; bodies stream both ways.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Protocol

from httpfront.flow import BodyChunks, RawHeaders

# Reading a client's body pauses while this much of it waits for the handler.
BODY_HIGH_WATER = 1024 * 1024


class ClientConnection(Protocol):
    """What a request and its writer need of the connection they arrived on."""

    peer: str
    closed: bool
    keep_alive: bool

    def body_drained(self, request: FrontRequest) -> None: ...

    async def write(self, data: bytes) -> None: ...

    def abort(self) -> None: ...


class ClientLink(Protocol):
    """What a request answered from the protocol callbacks (a server's fast path) needs of
    the client connection it arrived on."""

    peer: str
    closed: bool
    keep_alive: bool

    def send_now(self, data: bytes) -> None: ...

    def done(self, request: FrontRequest) -> None: ...

    def abort(self) -> None: ...

    def continue_async(self, request: FrontRequest, serve: Serve) -> None: ...


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

    def __init__(self, conn: ClientConnection, method: str, target: bytes, headers: RawHeaders) -> None:
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
        # Made when the first body bytes arrive: most requests have none (one less allocation).
        self._chunks: collections.deque[bytes] | None = None
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

    def body(self) -> AsyncIterator[bytes]:
        """The body as it arrives (read it once)."""
        return BodyChunks(self.next_chunk)

    async def next_chunk(self) -> bytes:
        """The next part of the body as it arrives; ``b""`` at its end."""
        while True:
            chunks = self._chunks
            if chunks:
                chunk = chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered <= BODY_HIGH_WATER // 4:
                    self._conn.body_drained(self)
                return chunk
            if self._done:
                return b""
            if self._conn.closed:
                raise ConnectionResetError("the client closed the connection mid-body")
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    @property
    def fully_read(self) -> bool:
        return self._done and not self._chunks

    @property
    def fully_sent(self) -> bool:
        """The client has sent the whole body (it may not all be read yet)."""
        return self._done

    def _feed(self, chunk: bytes) -> int:
        if chunk:  # an empty chunk would read as the end of the body
            if self._chunks is None:
                self._chunks = collections.deque()
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

    def __init__(self, conn: ClientConnection, *, head_only: bool) -> None:
        self._conn = conn
        self.head_only = head_only
        self._chunked = False
        self.started = False

    async def start(self, status: int, reason: str, headers: RawHeaders, *, length: int | None) -> None:
        """Write the head; without a ``length`` the body goes chunked."""
        framing = b""
        if length is not None:
            framing = b"content-length: %d\r\n" % length
        elif not self.head_only and status >= 200 and status not in {204, 304}:
            self._chunked = True
            framing = b"transfer-encoding: chunked\r\n"
        self.started = True
        await self._conn.write(
            response_head(status, reason, headers, framing, keep_alive=self._conn.keep_alive)
        )

    async def write(self, chunk: bytes) -> None:
        if self.head_only or not chunk:
            return
        await self._conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if self._chunked else chunk)

    async def end(self) -> None:
        if self._chunked and not self.head_only:
            await self._conn.write(b"0\r\n\r\n")

    async def respond(
        self, status: int, headers: RawHeaders, body: bytes, *, reason: str = "", close: bool = False
    ) -> None:
        """A whole small answer in one write; ``close`` ends the connection after it."""
        self.started = True
        if close:
            self._conn.keep_alive = False
        await self._conn.write(
            whole_response(
                status, reason, headers, body, keep_alive=self._conn.keep_alive, head_only=self.head_only
            )
        )

    def abort(self) -> None:
        """Cut the connection: the client sees a broken answer (too late for an error status)."""
        self._conn.abort()


Handler = Callable[[FrontRequest, ResponseWriter], Awaitable[None]]
# The rest of one request's serving, as a coroutine writing to its writer.
Serve = Callable[[ResponseWriter], Awaitable[None]]
# Answers a request from the callbacks if it can (True), else leaves it to the Handler.
FastPath = Callable[[FrontRequest, ClientLink], bool]


def whole_response(
    status: int, reason: str, headers: RawHeaders, body: bytes, *, keep_alive: bool, head_only: bool = False
) -> bytes:
    """A whole answer with a length-framed body, ready to write. A 204 or 304 has neither
    body nor Content-Length (RFC 9110 8.6: a 304's would have to be the 200's length)."""
    if status in BODILESS_STATUSES:
        return response_head(status, reason, headers, b"", keep_alive=keep_alive)
    head = response_head(
        status, reason, headers, b"content-length: %d\r\n" % len(body), keep_alive=keep_alive
    )
    return head if head_only else head + body


BODILESS_STATUSES = frozenset({204, 304})


def response_head(
    status: int, reason: str, headers: RawHeaders, framing: bytes, *, keep_alive: bool
) -> bytes:
    """Status line, ``headers``, the ``framing`` header line (or none), ``connection: close``
    when the connection ends after this answer, and the blank line."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, (reason or reason_phrase(status)).encode("latin-1"))]
    lines.extend(b"%s: %s\r\n" % pair for pair in headers)
    lines.append(framing)
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


_REASON_PHRASES = {status.value: status.phrase for status in HTTPStatus}


def reason_phrase(status: int) -> str:
    # A table, not HTTPStatus(status): the enum lookup costs ~1 us on every answer.
    return _REASON_PHRASES.get(status, "Unknown")
