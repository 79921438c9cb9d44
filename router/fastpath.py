"""The proxy's fast path: a request answered from the protocol callbacks, with no task.

Most requests through a router are bodiless GETs to a node that already has a kept-alive
connection free. For those (and only when there is no WAN delay to wait out and no trace
to record) the proxy writes the request head from the client's parser callback and this
exchange hears the answer from the upstream parser's callbacks: a small, length-framed
answer goes back to the client in one write from ``completed``; a large or chunked one is
handed to the async path to stream, from where it stands. The read timeout is an entry
in the handler's ``Deadlines`` (one timer for every exchange in flight, not one each).
Measured on the 2-core VM, the async path costs a task, three futures, two timeout scopes
and an async generator per request; this costs none of them (see bench/README.md, Router).

What fails is treated exactly as on the async path (``router.proxy``): passive health,
the same JSON errors (no node, address or OS error to the client; the detail to the log
under the answer's request id, ``router.failures``), and a failed attempt on a kept-alive
connection (the node died or closed it) is retried once on the next candidate, by the
async path.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING

from geo.lookup import UNKNOWN
from httpfront.messages import ClientLink, FrontRequest, ResponseWriter, whole_response
from router.errors import RouterError, UpstreamTimeoutError
from router.headers import RESPONSE_SKIP, ROUTE_HEADER_BYTES, route_header
from router.policy import Candidate
from router.upstream import UpstreamConnection, UpstreamResponse

if TYPE_CHECKING:
    from router.fleet import NodeTraffic
    from router.proxy import RouterHandler

logger = logging.getLogger(__name__)

# Answers up to this size are read whole and sent in one write; larger ones are streamed.
BUFFER_LIMIT = 256 * 1024


class FastExchange:
    """One request in flight on the fast path; the upstream connection's listener."""

    __slots__ = (
        "_client", "_handler", "_request", "_route", "_started", "_timeout_s", "_traffic", "_upstream",
        "chosen",
    )  # fmt: skip

    def __init__(
        self,
        handler: RouterHandler,
        request: FrontRequest,
        client: ClientLink,
        chosen: Candidate,
        *,
        started: float,
    ) -> None:
        self._handler = handler
        self._request = request
        self._client = client
        self.chosen = chosen
        self._started = started
        self._route = (ROUTE_HEADER_BYTES, route_header(chosen).encode())
        self._traffic: NodeTraffic | None = None
        self._upstream: UpstreamConnection | None = None
        self._timeout_s = 0.0

    def start(self, upstream: UpstreamConnection, head: bytes, timeout_s: float) -> None:
        # The head leaves first: the bookkeeping after it is off the client's critical path
        # (no answer can be read before this callback returns to the event loop).
        upstream.begin_exchange(head, self)
        self._traffic = self._handler.fleet.sent(self.chosen.node.node_id)
        self._upstream, self._timeout_s = upstream, timeout_s
        self._handler.deadlines.add(self, timeout_s, self._timed_out)

    # router.upstream.ExchangeListener

    def head_arrived(self, conn: UpstreamConnection) -> None:
        length = conn.content_length
        if length is not None and length <= BUFFER_LIMIT:
            return  # small: completed() answers in one write
        conn.detach()
        self._settle(conn.status)
        self._client.continue_async(self._request, functools.partial(self._stream, conn.answer()))

    def completed(self, conn: UpstreamConnection) -> None:
        try:
            status = conn.status
            headers = [pair for pair in conn.headers if pair[0].lower() not in RESPONSE_SKIP]
            headers.append(self._route)
            answer = whole_response(
                status, conn.reason, headers, conn.take_body(), keep_alive=self._client.keep_alive
            )
            # The client first; the rest is bookkeeping, all done before this callback returns,
            # so the connection is back in the pool before the client's next request is read.
            self._client.send_now(answer)
            conn.finish()
            self._settle(status)
            self._done(status)
        except Exception:
            logger.exception("unexpected failure serving GET %r", self._request.target)
            self._broke()

    def failed(self, conn: UpstreamConnection, error: Exception) -> None:
        try:
            self._settle(None)
            failure = self._handler.failure(self.chosen.node, error)
            self._handler.metrics.upstream_failure(self.chosen.node.node_id, failure.error.kind)
            if failure.may_retry(idempotent=True, bodiless=True):
                self._handler.metrics.retried()
                retry = functools.partial(self._handler.serve, self._request, attempts=1)
                self._client.continue_async(self._request, retry)
            else:
                self._answer_error(failure.error)
        except Exception:
            logger.exception("unexpected failure serving GET %r", self._request.target)
            self._broke()

    # the rest

    def _timed_out(self) -> None:
        conn = self._upstream
        assert conn is not None
        conn.detach()
        conn.abort()
        self._settle(None)
        error = UpstreamTimeoutError(
            f"edge node {self.chosen.node.node_id}: no answer within {self._timeout_s:g}s"
        )
        self._handler.metrics.upstream_failure(self.chosen.node.node_id, error.kind)
        self._answer_error(error)

    async def _stream(self, answer: UpstreamResponse, writer: ResponseWriter) -> None:
        status = 502
        try:
            status = await self._handler.respond(
                writer, answer, self.chosen, UNKNOWN, None, request=self._request
            )
        finally:
            answer.release()
            self._handler.metrics.observe(self.chosen, status, time.perf_counter() - self._started)

    def _settle(self, status: int | None) -> None:
        """The node answered (``status``) or failed: no more deadline, one less in flight."""
        self._handler.deadlines.discard(self)
        self._upstream = None
        if self._traffic is not None:
            self._traffic.in_flight -= 1
            self._traffic = None
        if status is not None:
            self._handler.fleet.answered(self.chosen.node.node_id, status)

    def _answer_error(self, error: RouterError) -> None:
        headers, body = self._handler.failures.answer(error, self._request, self.chosen)
        self._client.send_now(
            whole_response(error.status, "", headers, body, keep_alive=self._client.keep_alive)
        )
        self._done(error.status)

    def _done(self, status: int) -> None:
        self._handler.metrics.observe(self.chosen, status, time.perf_counter() - self._started)
        self._client.done(self._request)

    def _broke(self) -> None:
        """Too late for an error status: cut the client's connection."""
        self._client.abort()
        self._client.done(self._request)
