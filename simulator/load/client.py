"""A lean keep-alive HTTP/1.1 client: one pool of connections per simulated country.

Every socket is bound to the country's loopback address, so the edge geolocates the
client by its real source address. The client is callback-driven (an
``asyncio.Protocol`` per connection, no task per request): a general-purpose client such
as aiohttp's spends ~100 µs of Python per request, which would make the generator, not
the server, the thing being measured. It sends one request per connection at a time (no
pipelining), reads ``content-length`` and chunked bodies, and reports each outcome to a
sink with the request's *intended* send time, the serving region and the app version that
answered (``x-edge-app: NAME@VERSION``, interned: one dict lookup per answer, one string
per distinct version) and the cache's outcome (``x-cache``, one of a few constant strings).

Deadlines: connecting is bounded by ``timeout_s``; a request in flight or waiting for a
free connection longer than ``timeout_s`` fails as ``timeout`` when :meth:`CountryPool.sweep`
runs (the engine calls it every few milliseconds).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from simulator.load.headers import AppVersions, app_version, cache_result, header_value, serving_region

MAX_HEAD_BYTES = 64 * 1024

# (country, intended send time, time of the outcome, HTTP status or 0, serving region or "",
# error kind or None, app version or "", x-cache outcome or "")
Sink = Callable[[str, float, float, int, str, str | None, str, str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSpec:
    """What every simulated client sends."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def encode(self, host_header: str) -> bytes:
        """The request's bytes, built once and sent as-is on every request."""
        names = {name.lower() for name, _ in self.headers}
        lines = [f"{self.method} {self.path} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {host_header}")
        if "user-agent" not in names:
            lines.append("User-Agent: edgecdn-load")
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        if self.body or self.method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


class ProtocolError(ValueError):
    """The server's answer is not HTTP/1.x this client understands."""


class Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    def __init__(self, pool: CountryPool) -> None:
        self.pool: CountryPool = pool
        self.transport: asyncio.Transport | None = None
        self.intended = 0.0
        self.sent = 0.0
        self.received = 0.0
        self.busy = False
        self._buf = bytearray()
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._region = ""
        self._version = ""
        self._cache = ""
        self._keep_alive = True
        self._remaining = -1  # body bytes still expected; -1: until close
        self._chunked = False
        self._chunk_left = 0
        self._trailers = False
        # the body is kept only when answers are checked; the fast path only counts bytes
        self._body: bytearray | None = None if self.pool.expect is None else bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.pool.connected(self)

    def send(self, intended: float, now: float, payload: bytes) -> None:
        self.intended, self.sent, self.busy = intended, now, True
        assert self.transport is not None
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        # when the (last part of the) answer arrived, before any Python parses it
        self.received = self.pool.loop.time()
        if not self.busy:
            self.abort()  # an answer nobody asked for: the connection is out of step
            return
        self._buf += data
        try:
            if self._status == 0 and not self._read_head():
                return
            if self._body_complete():
                self._complete()
        except (ProtocolError, ValueError):
            self._fail("protocol")

    def _read_head(self) -> bool:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolError("response head too large")
            return False
        head = bytes(buf[:end])
        del buf[: end + 4]
        if not head.startswith(b"HTTP/1.") or len(head) < 12:
            raise ProtocolError("not an HTTP/1.x response")
        self._status = int(head[9:12])
        if 100 <= self._status < 200:  # an interim answer: the real one follows
            self._status = 0
            return self._read_head() if buf else False
        lower = head.lower()
        self._region = serving_region(lower, head)
        self._version = app_version(lower, head, self.pool.app_versions)
        self._cache = cache_result(lower)
        connection = header_value(lower, b"connection")
        self._keep_alive = (connection != b"close") if head[7:8] == b"1" else (connection == b"keep-alive")
        encoding = header_value(lower, b"transfer-encoding")
        length = header_value(lower, b"content-length")
        if encoding is not None and b"chunked" in encoding:
            self._chunked = True
        elif self._status in (204, 304) or self.pool.method_is_head:
            self._remaining = 0
        elif length is not None:
            self._remaining = int(length)
        else:
            self._keep_alive = False
        return True

    def _body_complete(self) -> bool:
        buf = self._buf
        if self._chunked:
            return self._chunks_complete()
        if self._remaining < 0:
            self._keep_body(len(buf))
            buf.clear()  # read until close; connection_lost completes it
            return False
        if len(buf) < self._remaining:
            self._remaining -= len(buf)
            self._keep_body(len(buf))
            buf.clear()
            return False
        self._keep_body(self._remaining)
        del buf[: self._remaining]
        return True

    def _keep_body(self, size: int) -> None:
        if self._body is not None and size > 0:
            self._body += self._buf[:size]

    def _chunks_complete(self) -> bool:
        buf = self._buf
        while True:
            if self._chunk_left:
                taken = min(self._chunk_left, len(buf))
                self._keep_body(min(taken, self._chunk_left - 2))  # not the chunk's closing CRLF
                del buf[:taken]
                self._chunk_left -= taken
                if self._chunk_left:
                    return False
            if self._trailers:
                end = buf.find(b"\r\n")
                if end < 0:
                    return False
                del buf[: end + 2]
                if end == 0:
                    return True
                continue
            end = buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(buf[:end]).split(b";")[0], 16)
            del buf[: end + 2]
            if size == 0:
                self._trailers = True
            else:
                self._chunk_left = size + 2

    def _complete(self) -> None:
        status, region, version, keep_alive = self._status, self._region, self._version, self._keep_alive
        cache = self._cache
        failed_check = (
            self._body is not None and self.pool.expect is not None and self.pool.expect not in self._body
        )
        self._reset()
        self.busy = False
        if not keep_alive:
            self.abort()
        self.pool.finished(
            self,
            status,
            region,
            version,
            cache,
            keep_alive=keep_alive,
            kind="check" if failed_check else None,
        )

    def _fail(self, kind: str) -> None:
        self._reset()
        self._buf.clear()
        was_busy, self.busy = self.busy, False
        self.abort()
        if was_busy:
            self.pool.failed(self, kind)

    def timed_out(self) -> None:
        self._fail("timeout")

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy and self._status and not self._chunked and self._remaining < 0 and exc is None:
            self.received = self.pool.loop.time()
            self._complete()  # a body delimited by the end of the connection
        elif self.busy:
            self.busy = False
            self.pool.failed(self, "reset" if exc is not None else "closed")
        self.pool.lost(self)


class CountryPool:
    """Keep-alive connections of one country's clients, from its loopback address."""

    def __init__(
        self,
        *,
        country: str,
        local_addresses: tuple[str, ...],
        host: str,
        port: int,
        payload: bytes,
        method: str,
        max_connections: int,
        timeout_s: float,
        sink: Sink,
        expect: bytes | None = None,
        app_versions: AppVersions | None = None,
    ) -> None:
        self.country = country
        self.local_addresses = local_addresses  # one per simulated client, used in turn
        self._next_address = 0
        self.host, self.port = host, port
        self.payload = payload
        self.method_is_head = method == "HEAD"
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self.sink = sink
        self.expect = expect  # answers must contain these bytes, else they fail as "check"
        # shared by an engine's pools, so every country's answers name a version by one string
        self.app_versions = AppVersions() if app_versions is None else app_versions
        self.loop = asyncio.get_running_loop()
        self.idle: list[Connection] = []
        self.open: set[Connection] = set()
        self.pending: deque[float] = deque()
        self.connecting = 0
        self.closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    def warm(self, connections: int) -> list[asyncio.Task[None]]:
        """Open up to ``connections`` idle connections ahead of the run, as wrk does."""
        wanted = min(connections, self.max_connections) - len(self.open) - self.connecting
        return [self._connect() for _ in range(wanted)]

    def submit(self, intended: float) -> None:
        """Send now on an idle connection, or queue until one is free (latency keeps counting)."""
        if self.idle:
            self.idle.pop().send(intended, self.loop.time(), self.payload)
            return
        self.pending.append(intended)
        if len(self.open) + self.connecting < self.max_connections:
            self._connect()

    def _connect(self) -> asyncio.Task[None]:
        self.connecting += 1
        task = self.loop.create_task(self._open(), name=f"load-connect-{self.country}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _open(self) -> None:
        address = self.local_addresses[self._next_address % len(self.local_addresses)]
        self._next_address += 1
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.loop.create_connection(
                    lambda: Connection(self), self.host, self.port, local_addr=(address, 0)
                )
        except (OSError, TimeoutError) as exc:
            self.connecting -= 1
            if self.pending and not self.closed:
                kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
                self.sink(self.country, self.pending.popleft(), self.loop.time(), 0, "", kind, "", "")
                if self.pending and len(self.open) + self.connecting < self.max_connections:
                    self._connect()

    def connected(self, conn: Connection) -> None:
        self.connecting -= 1
        self.open.add(conn)
        if self.closed:
            conn.abort()
            return
        self._release(conn)

    def _release(self, conn: Connection) -> None:
        if self.pending and not self.closed:
            conn.send(self.pending.popleft(), self.loop.time(), self.payload)
        else:
            self.idle.append(conn)

    def finished(
        self,
        conn: Connection,
        status: int,
        region: str,
        version: str,
        cache: str,
        *,
        keep_alive: bool,
        kind: str | None,
    ) -> None:
        intended = conn.intended
        if keep_alive and not self.closed:
            self._release(conn)
        self.sink(self.country, intended, conn.received, status, region, kind, version, cache)

    def failed(self, conn: Connection, kind: str) -> None:
        self.sink(self.country, conn.intended, self.loop.time(), 0, "", kind, "", "")

    def lost(self, conn: Connection) -> None:
        self.open.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if self.pending and not self.closed and len(self.open) + self.connecting < self.max_connections:
            self._connect()

    def sweep(self, now: float) -> None:
        """Fail requests older than the timeout: in flight (from sending) or queued (from intent)."""
        deadline = now - self.timeout_s
        for conn in [c for c in self.open if c.busy and c.sent < deadline]:
            conn.timed_out()
        while self.pending and self.pending[0] < deadline:
            self.sink(self.country, self.pending.popleft(), now, 0, "", "timeout", "", "")

    def in_flight(self) -> int:
        return len(self.pending) + sum(1 for c in self.open if c.busy)

    def close(self) -> int:
        """Abort every connection; return how many requests were still unanswered."""
        self.closed = True
        unanswered = self.in_flight()
        self.pending.clear()
        for conn in list(self.open):
            conn.busy = False
            conn.abort()
        for task in self._tasks:
            task.cancel()
        return unanswered
