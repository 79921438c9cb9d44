"""The edge node's HTTP adapter: ``httpfront`` requests in, the pipeline, bytes out.

Served on the lean ``httpfront`` server rather than aiohttp's: measured under ``wrk -c50``
(bench/README.md, Edge node throughput), aiohttp's request and response objects and its
task per request cost more than the reactor handler itself. A bodiless request (nearly
every GET) is served straight from the parser's callback by ``serve_now``: the stages
before execution are synchronous, and so is a wasm handler the executor runs inline, so
the answer is written before the callback returns and no task is created. A request with
a body, an origin route, or a handler moved to the thread pool continues as a task. Before
all that, a plain request for a fresh stored answer is replayed from the bytes the full
path made for it the first time (``edge_node.cache_stage.FreshHits``).

Everything a handler can do wrong ends as a JSON error for that one request; the node
keeps serving. An error answer carries a fresh request id (``x-request-id`` and the body's
``request_id``); for a failure inside the node it carries only the error's kind, and the
detail (module digest, wasmtime's message, the origin) goes to the log under that id and
to the request's trace (``edge_node.errors``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import NamedTuple
from urllib.parse import unquote

from edge_node.admin import AdminEndpoint
from edge_node.app import LoadedApp
from edge_node.cache_stage import FreshHits, HitPlan
from edge_node.errors import BodyTooLargeError, EdgeNodeError
from edge_node.geo_headers import NodeIdentity
from edge_node.load import LoadTracker
from edge_node.metrics import EdgeMetrics
from edge_node.pipeline import Exchange, Pipeline, response_headers
from edge_node.telemetry import EdgeTelemetry
from httpcache.policy import HIT
from httpfront.flow import RawHeaders
from httpfront.messages import ClientLink, FrontRequest, ResponseWriter, reason_phrase, whole_response
from runtime.failure_log import FAILURE_LOG_PER_S, LogBudget, new_request_id
from tracing.lean import RequestTrace
from wasm_host.values import Headers

logger = logging.getLogger(__name__)

# Response headers the handler must not set itself: the server frames the body.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
# Response headers only the node may state (which node, region, PoP; cache outcome).
NODE_FACT_PREFIXES = ("x-edge-", "x-cache")
# Which app version answered: NAME@VERSION, on every answer of a node that has an app.
APP_HEADER = b"x-edge-app"
# Names an error answer, and its log line and trace, for the client to quote to an operator
# (only the node's error answers: a handler's answer, with any id it echoes, is its own).
REQUEST_ID_HEADER = "x-request-id"
# Stated by the node whether or not it states them on this answer: a handler's are dropped.
NODE_ONLY_HEADERS = frozenset({"date", APP_HEADER.decode()})


class EdgeHttpHandler:
    """Admin paths, else the pipeline; ``serve_now`` is the server's fast path and the
    instance itself its handler for what must be awaited."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        node: NodeIdentity,
        metrics: EdgeMetrics,
        load: LoadTracker,
        admin: dict[str, AdminEndpoint],
        max_body_bytes: int,
        current_app: Callable[[], LoadedApp | None],
        telemetry: EdgeTelemetry | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._current_app = current_app
        self._telemetry = telemetry
        self._node = node
        self._metrics = metrics
        self._load = load
        self._admin = admin
        self._max_body_bytes = max_body_bytes
        self._date = _HttpDate()
        self._failure_log = LogBudget(FAILURE_LOG_PER_S)
        self._hits: FreshHits | None = pipeline.fresh_hits()
        self.server_port = 80  # set once the listener is bound; SERVER_PORT for handlers

    def serve_now(self, request: FrontRequest, link: ClientLink) -> bool:
        """Answer a bodiless request from the parser's callback (always True: a request that
        needs awaiting is handed on with ``link.continue_async``)."""
        hits = self._hits
        key = None if hits is None else hits.plain_key(request.method, request.target, request.headers)
        trace = None
        if key is not None and hits is not None:
            # A plain request carries no trace context: a sampled one goes the full way. No
            # admin path has a plan (the full path answered it without the cache), so this
            # comes first.
            trace = None if self._telemetry is None else self._telemetry.begin(None, None)
            if trace is None and self._replay(hits, key, request, link):
                return True
        answer = self._admin_answer(request)
        if answer is None:
            exchange = self._begin(request, trace, begun=key is not None)
            try:
                self._pipeline.prepare(exchange)
                if not self._pipeline.execute_now(exchange):
                    link.continue_async(request, lambda writer: self._execute(exchange, writer))
                    return True
                answer = self._finish(exchange, None)
                if key is not None and hits is not None and exchange.cache_status == HIT:
                    self._plan(hits, key, exchange, answer)
            except Exception as exc:  # noqa: BLE001 - every failure is answered; _failed logs bugs
                answer = self._failed(exchange, exc)
            self._metrics.answered_in_callback.value += 1
        if answer.close:
            link.keep_alive = False
        link.send_now(
            whole_response(
                answer.status,
                "",
                answer.headers,
                answer.body,
                keep_alive=link.keep_alive,
                head_only=request.method == "HEAD",
            )
        )
        link.done(request)
        return True

    def _replay(self, hits: FreshHits, key: str, request: FrontRequest, link: ClientLink) -> bool:
        """Answer a fresh hit from its plan, counted as the full path counts it; False when
        there is none (no plan, a new app, or the entry is no longer fresh)."""
        started = time.perf_counter()
        found = hits.find(key, request.peer)
        if found is None:
            return False
        plan, age = found
        status = plan.entry.status
        plan.requests.value += 1
        self._metrics.answered_in_callback.value += 1
        self._load.started()
        self._load.finished(status)
        # The stages were one: the whole hit is the cache's time (server-timing, in ms to the
        # µs, formatted from integers: a float's formatting costs more).
        micros = int((time.perf_counter() - started) * 1_000_000)
        link.send_now(
            b"%sage: %d\r\n%sserver-timing: cache;dur=%d.%03d\r\n%s%s%s%s\r\n%s"
            % (
                plan.head, age, plan.facts, micros // 1000, micros % 1000, plan.app_line,
                self._date.line(), plan.framing, b"" if link.keep_alive else b"connection: close\r\n",
                b"" if request.method == "HEAD" else plan.entry.body,
            )
        )  # fmt: skip
        plan.app.figures.record(status, micros)
        link.done(request)
        return True

    def _plan(self, hits: FreshHits, key: str, exchange: Exchange, answer: Answer) -> None:
        """After the full path answered a plain request from the cache: the replay of that
        answer, made of the same fields in the same order (``_answer_headers``)."""
        entry, app, match = hits.replayable(key, exchange), exchange.app, exchange.match
        if entry is None or app is None or match is None or answer.close:
            return
        facts = [(name, value) for name, value in response_headers(exchange, self._node)
                 if name not in {"server-timing", "traceresponse"}]  # fmt: skip
        overridden = {name for name, _ in facts if name.startswith(NODE_FACT_PREFIXES)}
        fields = _handler_fields(entry.headers, overridden)
        status_line = b"HTTP/1.1 %d %s\r\n" % (entry.status, reason_phrase(entry.status).encode("latin-1"))
        plan = HitPlan(
            entry=entry,
            app=app,
            route=match.route,
            requests=self._metrics.requests.labels(match.route, str(entry.status)),
            head=status_line + b"".join(b"%s: %s\r\n" % pair for pair in fields),
            facts=b"".join(b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in facts),
            app_line=b"%s: %s\r\n" % (APP_HEADER, app.header),
            framing=b"content-length: %d\r\n" % len(entry.body),
        )
        hits.keep(key, plan)

    async def __call__(self, request: FrontRequest, writer: ResponseWriter) -> None:
        """A request with a body (or one the fast path was not offered)."""
        answer = self._admin_answer(request)
        if answer is None:
            exchange = self._begin(request)
            try:
                exchange.body = await _read_body(request, self._max_body_bytes)
                self._pipeline.prepare(exchange)
                await self._pipeline.execute(exchange)
                answer = self._finish(exchange, None)
            except Exception as exc:  # noqa: BLE001 - every failure is answered; _failed logs bugs
                answer = self._failed(exchange, exc)
        await writer.respond(answer.status, answer.headers, answer.body, close=answer.close)

    async def _execute(self, exchange: Exchange, writer: ResponseWriter) -> None:
        """The rest of a request ``serve_now`` began: an origin fetch or a pooled handler."""
        try:
            await self._pipeline.execute(exchange)
            answer = self._finish(exchange, None)
        except Exception as exc:  # noqa: BLE001 - every failure is answered; _failed logs bugs
            answer = self._failed(exchange, exc)
        await writer.respond(answer.status, answer.headers, answer.body, close=answer.close)

    def _admin_answer(self, request: FrontRequest) -> Answer | None:
        endpoint = self._admin.get(request.path)
        if endpoint is None:
            return None
        admin = endpoint()
        headers = [(b"content-type", admin.content_type.encode()), self._date.header()]
        return Answer(admin.status, headers, admin.body)

    def _begin(
        self, request: FrontRequest, trace: RequestTrace | None = None, *, begun: bool = False
    ) -> Exchange:
        """The request's exchange; ``begun``: its trace, if sampled, is ``trace``."""
        self._metrics.in_flight.inc()
        self._load.started()
        exchange = _exchange(request, self.server_port)
        exchange.started = time.perf_counter()
        if begun:
            exchange.trace = trace
        elif self._telemetry is not None:
            exchange.trace = self._telemetry.begin(
                exchange.header("traceparent"), exchange.header("tracestate")
            )
        return exchange

    def _failed(self, exchange: Exchange, exc: Exception) -> Answer:
        """The answer to a request that failed: its ``EdgeNodeError`` as JSON; anything else
        is a bug, not the client's doing, logged with its traceback and answered as a 500."""
        if isinstance(exc, EdgeNodeError):
            error = exc
        else:
            error = EdgeNodeError(f"the edge node failed unexpectedly: {exc!r}")
            error.request_id = new_request_id()  # a bug: always logged, whatever the budget
            logger.error(
                "request %s: unexpected failure serving %s %s",
                error.request_id, exchange.method, exchange.path, exc_info=exc,
            )  # fmt: skip
        if exchange.app is None:
            # Failed before routing (a head or body too large): the app serving now answered.
            exchange.app = self._current_app()
        return self._finish(exchange, error)

    def _finish(self, exchange: Exchange, error: EdgeNodeError | None) -> Answer:
        """Count the request (for its app version too), record its trace, and make its
        answer: the handler's, or the error as JSON."""
        self._metrics.in_flight.dec()
        result = exchange.response
        close = False
        if error is None and result is not None:
            status, body = result.status, result.body
            headers = self._answer_headers(exchange, result.headers)
        else:
            error = error or EdgeNodeError("the pipeline ended without an answer")
            if not error.request_id:
                error.request_id = new_request_id()
                if error.public_message is not None:  # the node's business: its log says what
                    self._log_failure(exchange, error)
            status, body = error.status, json.dumps(error.client_json(error.request_id)).encode()
            headers = self._answer_headers(
                exchange,
                (
                    ("content-type", "application/json"),
                    (REQUEST_ID_HEADER, error.request_id),
                    *error.answer_headers,
                ),
            )
            close = isinstance(error, BodyTooLargeError)  # the rest of the body is still on the wire
        self._metrics.count_request(exchange.route_label, status)
        self._load.finished(status)
        app = exchange.app
        if app is not None:
            app.figures.record(status, int((time.perf_counter() - exchange.started) * 1_000_000))
        if exchange.trace is not None and self._telemetry is not None:
            self._telemetry.record(exchange.trace, exchange, status, error)
        return Answer(status, headers, body, close)

    def _log_failure(self, exchange: Exchange, error: EdgeNodeError) -> None:
        """One line with everything the client is not told, under the request id (within
        the budget; lines over it are counted and the count logged with the next line)."""
        suppressed = self._failure_log.take(time.monotonic())
        if suppressed is None:
            return
        trace = exchange.trace
        logger.warning(
            "request %s: %s %s answered %d %s: %s %s%s%s",
            error.request_id, exchange.method, exchange.path, error.status, error.kind, error.message,
            json.dumps(error.details, default=str),
            f" trace {trace.trace_id.hex()}" if trace is not None else "",
            f" ({suppressed} failure lines over the budget were not logged)" if suppressed else "",
        )  # fmt: skip

    def _answer_headers(self, exchange: Exchange, handler_headers: Headers) -> RawHeaders:
        """The handler's headers (less framing, and less any fact the node states itself,
        the date and ``x-edge-app`` included, as nginx does for an upstream's), then the
        node's: who served it, which app version answered, how long each stage took, the
        date."""
        facts = response_headers(exchange, self._node)
        overridden = {name for name, _ in facts if name.startswith(NODE_FACT_PREFIXES)}
        headers = _handler_fields(handler_headers, overridden)
        headers.extend((name.encode(), value.encode()) for name, value in facts)
        app = exchange.app
        if app is not None:
            headers.append((APP_HEADER, app.header))  # made once per app, at load
        headers.append(self._date.header())
        return headers


def _handler_fields(handler_headers: Headers, overridden: set[str]) -> RawHeaders:
    """The handler's fields the client gets: less framing, and less any the node states."""
    return [
        # UTF-8 as aiohttp wrote them; an origin's undecodable bytes go back unchanged.
        (name.encode(), value.encode("utf-8", "surrogateescape"))
        for name, value in handler_headers
        if name not in FRAMING_HEADERS and name not in overridden and name not in NODE_ONLY_HEADERS
    ]


class Answer(NamedTuple):
    """A whole answer; ``close`` ends the connection after it."""

    status: int
    headers: RawHeaders
    body: bytes
    close: bool = False


def _exchange(request: FrontRequest, server_port: int) -> Exchange:
    # Names lower-cased once here (bytes.lower: ASCII, as field names are), so that every
    # lookup along the pipeline is a plain comparison.
    headers = [(name.lower().decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
               for name, value in request.headers]  # fmt: skip
    path = request.path
    if "%" in path:
        path = unquote(path)  # PATH_INFO and route matching see the decoded path (CGI/1.1)
    exchange = Exchange(
        method=request.method,
        path=path,
        query=request.query,
        headers=headers,
        body=b"",
        peer=request.peer,
        port=server_port,
    )
    host = exchange.header("host")
    if host:
        exchange.host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return exchange


async def _read_body(request: FrontRequest, limit: int) -> bytes:
    if not request.body_exists:
        return b""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError(
            f"request body of {request.content_length} bytes exceeds the limit of {limit}", limit_bytes=limit
        )
    body = bytearray()
    async for chunk in request.body():
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError(f"request body exceeds the limit of {limit} bytes", limit_bytes=limit)
    return bytes(body)


class _HttpDate:
    """The ``date`` header (RFC 9110 section 6.6.1: an origin server with a clock sends it),
    formatted once per second rather than per request."""

    __slots__ = ("_header", "_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._header = (b"date", b"")
        self._line = b""

    def header(self) -> tuple[bytes, bytes]:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._header = (b"date", formatdate(now, usegmt=True).encode())
            self._line = b"date: %s\r\n" % self._header[1]
        return self._header

    def line(self) -> bytes:
        """The same as a whole header line, ``date: ...`` CRLF."""
        self.header()
        return self._line
