"""The router's data plane: locate the client, choose a node, emulate the WAN, proxy.

For each request: the client address (the peer, or the forwarding chain when the peer is
a trusted proxy), its location, the policy's candidates, then the request goes to the
first candidate over a keep-alive pool (``router.upstream``), bodies streamed both ways.
``X-Forwarded-For`` gets the peer appended (edge nodes trust the router), and geo or edge
headers an untrusted client sent are removed, so nobody can pretend to be elsewhere.

The WAN (``router.wan``): each direction waits the modeled delay plus any fault an
operator injected on the region (``router.faults``); a trip that emulated loss makes TCP
give up is a 504 ``wan_loss``, never retried (the client's own path failed, not a node).

Failures: a connect failure or a connection that dies under a request ejects the node
(passive health). The request is retried once on the next candidate when the node never
saw it (connect failure), or when it is idempotent and has no body to resend. Every
failure is a JSON error for that one request, which names no node, address or OS error:
those go to the log under the answer's request id (``router.failures``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from geo.forwarding import (
    IPNetwork,
    resolve_client,
)
from geo.lookup import UNKNOWN, GeoLocator, Location
from httpfront.flow import RawHeaders
from httpfront.messages import ClientLink, FrontRequest, ResponseWriter
from router.deadlines import Deadlines
from router.errors import (
    NoHealthyNodeError,
    RouterError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    WanLossError,
)
from router.failures import FailureAnswers
from router.fastpath import BUFFER_LIMIT, FastExchange
from router.fleet import Fleet
from router.headers import (
    RESPONSE_SKIP,
    ROUTE_HEADER_BYTES,
    RequestFacts,
    forward_headers,
    route_header,
)
from router.metrics import RouterMetrics
from router.policy import Candidate, ClientPlace, NodeView, RoutingPolicy
from router.telemetry import RouterTelemetry, RouteSpan
from router.upstream import UpstreamPool, UpstreamResponse, request_head
from router.wan import WanPath

logger = logging.getLogger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
MAX_ATTEMPTS = 2
MAX_CACHED_PLANS = 65536


class AttemptFailedError(Exception):
    """One attempt failed. ``sent_nothing``: the node never saw the request (a connect
    failure), so even a request with a body may go elsewhere; ``retry=False``: no retry."""

    def __init__(self, error: RouterError, *, sent_nothing: bool = False, retry: bool = True) -> None:
        super().__init__(error.message)
        self.error = error
        self.sent_nothing = sent_nothing
        self.retry = retry

    def may_retry(self, *, idempotent: bool, bodiless: bool) -> bool:
        return self.retry and (self.sent_nothing or (idempotent and bodiless))


@dataclass(frozen=True, slots=True)
class _Target:
    host: str
    port: int


class RouterHandler:
    """The proxy: serves every request that is not an admin path."""

    def __init__(
        self,
        *,
        fleet: Fleet,
        policy: RoutingPolicy,
        locator: GeoLocator,
        upstream: UpstreamPool,
        trusted: tuple[IPNetwork, ...],
        wan: WanPath,
        metrics: RouterMetrics,
        telemetry: RouterTelemetry | None,
    ) -> None:
        self._fleet = fleet
        self._policy = policy
        self.locator = locator
        self._upstream = upstream
        self._trusted = trusted
        self._wan = wan
        self._faults = wan.faults
        self._metrics = metrics
        self._telemetry = telemetry
        self.failures = FailureAnswers()
        # The fast path (router.fastpath) needs no WAN delay to wait and no trace to record;
        # while any WAN fault is set it is skipped too (serve_now), so every request meets it.
        self.fast_path_enabled = not wan.enabled and telemetry is None
        self.fast_requests = 0  # taken by the fast path (some then stream or retry on the async path)
        # The fast path's read timeouts: one timer for all, firing up to a quarter late (at most 1 s).
        self.deadlines = Deadlines(resolution_s=min(1.0, upstream.read_timeout_s / 4))
        self._targets: dict[str, _Target] = {}
        self._plans: dict[tuple[str, str | None], list[Candidate]] = {}
        self._plans_for: tuple[NodeView, ...] = ()

    def locate(self, address: str) -> Location:
        try:
            return self.locator.locate(address)
        except ValueError:
            return UNKNOWN  # a peer address we cannot parse has no place, but may be served

    @property
    def fleet(self) -> Fleet:
        return self._fleet

    @property
    def metrics(self) -> RouterMetrics:
        return self._metrics

    def serve_now(self, request: FrontRequest, link: ClientLink) -> bool:
        """Answer a bodiless GET from the protocol callbacks (``router.fastpath``) when its
        node has a kept-alive connection free; False, having done nothing, when it cannot."""
        if not self.fast_path_enabled or request.method != "GET" or not self._faults.empty:
            return False
        started = time.perf_counter()
        facts = RequestFacts(request.headers)
        trusted_peer, place, _ = self._place(request.peer, facts)
        plan = self._plan(place)
        if not plan:
            return False
        chosen = plan[0]
        target = self._target(chosen.node.url)
        upstream = self._upstream.idle_connection(target.host, target.port)
        if upstream is None:
            return False
        outgoing = forward_headers(request, trusted_peer=trusted_peer, replace_trace_context=False)
        exchange = FastExchange(self, request, link, chosen, started=started)
        exchange.start(upstream, request_head("GET", request.target, outgoing), self._upstream.read_timeout_s)
        self.fast_requests += 1
        return True

    async def __call__(self, request: FrontRequest, writer: ResponseWriter) -> None:
        await self.serve(request, writer)

    async def serve(
        self, request: FrontRequest, writer: ResponseWriter, *, attempts: int = MAX_ATTEMPTS
    ) -> None:
        """The async path: any request, on up to ``attempts`` candidates."""
        started = time.perf_counter()
        facts = RequestFacts(request.headers)
        trusted_peer, place, location = self._place(request.peer, facts)
        span = (
            self._telemetry.begin(facts.traceparent, facts.tracestate, place.address, location)
            if self._telemetry is not None
            else None
        )
        candidates = iter(self._plan(place))
        idempotent = request.method in IDEMPOTENT
        bodiless = not request.body_exists
        error: RouterError = NoHealthyNodeError("no healthy edge node can serve this request")
        status: int | None = None
        chosen: Candidate | None = None
        tried: Candidate | None = None  # the last node that failed, for the log
        for attempt in range(attempts):
            chosen = next(candidates, None)
            if chosen is None:
                break
            tried = chosen
            try:
                status = await self._attempt(
                    request,
                    writer,
                    chosen,
                    location,
                    trusted_peer=trusted_peer,
                    span=span,
                    first=attempt == 0,
                )
                break
            except AttemptFailedError as failure:
                error = failure.error
                if isinstance(error, WanLossError):
                    break  # the client's own path failed: no node to blame, no other path to try
                self._metrics.upstream_failure(chosen.node.node_id, error.kind)
                if not failure.may_retry(idempotent=idempotent, bodiless=bodiless):
                    break
                self._metrics.retried()
        if status is None:
            status = error.status
            await self.write_error(writer, error, request, chosen, span, tried=tried)
        self._metrics.observe(chosen, status, time.perf_counter() - started)
        if span is not None and self._telemetry is not None:
            self._telemetry.finish(span, request.method, request.path, chosen, status)

    def _place(self, peer: str, facts: RequestFacts) -> tuple[bool, ClientPlace, Location]:
        """Whether the peer is a trusted proxy, and the client behind it: its place for the
        policy, and its location."""
        client = resolve_client(
            peer, forwarded_for=facts.forwarded_for, forwarded=facts.forwarded, trusted=self._trusted
        )
        location = self.locate(client.address)
        place = ClientPlace(
            address=client.address, latitude=location.latitude, longitude=location.longitude, pin=facts.pin
        )
        return client.via_trusted_proxy, place, location

    async def _attempt(
        self,
        request: FrontRequest,
        writer: ResponseWriter,
        chosen: Candidate,
        location: Location,
        *,
        trusted_peer: bool,
        span: RouteSpan | None,
        first: bool,
    ) -> int:
        """Serve the request from ``chosen``; the status written, or AttemptFailedError."""
        node = chosen.node
        faulted = await self._wan_delay(location, node, span) if first else False
        outgoing = forward_headers(request, trusted_peer=trusted_peer, replace_trace_context=span is not None)
        telemetry = self._telemetry if span is not None else None
        hop = None
        if telemetry is not None and span is not None:
            hop = telemetry.hop(span)
            outgoing.append((b"traceparent", span.trace.traceparent(hop.span_id).encode()))
            if span.trace.tracestate:
                outgoing.append((b"tracestate", span.trace.tracestate.encode()))
        body, chunked = _request_body(request, outgoing)
        target = self._target(node.url)
        traffic = self._fleet.sent(node.node_id)
        try:
            upstream = await self._upstream.request(
                target.host,
                target.port,
                request_head(request.method, request.target, outgoing),
                body,
                chunked=chunked,
                head_only=request.method == "HEAD",
            )
        except (RouterError, OSError) as exc:
            if telemetry is not None and span is not None and hop is not None:
                telemetry.hop_done(span, hop, node, status=None, error=type(exc).__name__)
            raise self.failure(node, exc) from exc
        finally:
            traffic.in_flight -= 1
        if telemetry is not None and span is not None and hop is not None:
            telemetry.hop_done(span, hop, node, status=upstream.status)
        self._fleet.answered(node.node_id, upstream.status)
        try:
            return await self.respond(
                writer, upstream, chosen, location, span, request=request, faulted=faulted
            )
        finally:
            upstream.release()

    async def _wan_delay(self, location: Location, node: NodeView, span: RouteSpan | None) -> bool:
        """Wait out the request's trip to the PoP; whether a WAN fault was on its way (a
        trip lost for good is an AttemptFailedError, once its retransmissions are waited)."""
        leg = self._wan.leg(location, node.region)
        if leg.delay_ms:
            await asyncio.sleep(leg.delay_ms / 1000)
            if span is not None:
                span.wan_ms += leg.delay_ms
        if leg.fault is None:
            return False
        self._metrics.wan_fault(node.region, leg.retransmissions, counted=False)
        if leg.lost:
            self._metrics.wan_lost(node.region)
            raise AttemptFailedError(leg.lost_error(node.region, "request"), retry=False)
        return True

    def _plan(self, place: ClientPlace) -> list[Candidate]:
        """The first candidates for this client, remembered until the fleet's view changes
        (a client's plan depends only on its address, pin and coordinates, and the fleet)."""
        views = self._fleet.views()
        if views is not self._plans_for:
            self._plans.clear()
            self._plans_for = views
        key = (place.address, place.pin)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= MAX_CACHED_PLANS:
                self._plans.clear()
            plan = self._plans[key] = self._policy.plan(place, views, limit=MAX_ATTEMPTS)
        return plan

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            target = self._targets[url] = _Target(parts.hostname or "127.0.0.1", parts.port or 80)
        return target

    def failure(self, node: NodeView, exc: BaseException) -> AttemptFailedError:
        """What a failed attempt means: passive health, the client's error, whether to retry."""
        if isinstance(exc, UpstreamConnectError):
            self._fleet.connect_failed(node.node_id, exc.message)
            return AttemptFailedError(exc, sent_nothing=True)
        if isinstance(exc, UpstreamClosedError | OSError):
            # A kept-alive connection died under us (the node restarted or was killed).
            self._fleet.connect_failed(node.node_id, str(exc))
            return AttemptFailedError(UpstreamClosedError(f"edge node {node.node_id}: {exc}"))
        if isinstance(exc, UpstreamTimeoutError):
            return AttemptFailedError(UpstreamTimeoutError(f"edge node {node.node_id}: {exc}"), retry=False)
        message = exc.message if isinstance(exc, RouterError) else str(exc)
        return AttemptFailedError(
            UpstreamUnavailableError(f"edge node {node.node_id}: {message}"), retry=False
        )

    async def respond(
        self,
        writer: ResponseWriter,
        upstream: UpstreamResponse,
        chosen: Candidate,
        location: Location,
        span: RouteSpan | None,
        *,
        request: FrontRequest,
        faulted: bool = False,
    ) -> int:
        """Send the node's answer on, after its trip back to the client (``faulted``: the
        request's trip already met a fault, and was counted)."""
        headers = [pair for pair in upstream.headers if pair[0].lower() not in RESPONSE_SKIP]
        headers.append((ROUTE_HEADER_BYTES, route_header(chosen).encode()))
        leg = self._wan.leg(location, chosen.node.region)
        delay_ms = leg.delay_ms
        if span is not None:
            span.wan_ms += delay_ms
        if leg.fault is not None:
            self._metrics.wan_fault(chosen.node.region, leg.retransmissions, counted=faulted)
            if leg.lost:
                self._metrics.wan_lost(chosen.node.region)
                await asyncio.sleep(delay_ms / 1000)
                error = leg.lost_error(chosen.node.region, "answer")
                await self.write_error(writer, error, request, chosen, span)
                return error.status
        length = upstream.content_length
        if writer.head_only:
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            await writer.start(upstream.status, upstream.reason, headers, length=length)
            return upstream.status
        if length is not None and length <= BUFFER_LIMIT:
            try:
                body = await upstream.read()
            except RouterError as exc:
                self._fleet.answered(chosen.node.node_id, 502)
                failure = UpstreamUnavailableError(f"edge node {chosen.node.node_id}: {exc}")
                await self.write_error(writer, failure, request, chosen, span)
                return failure.status
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            await writer.respond(upstream.status, headers, body, reason=upstream.reason)
            return upstream.status
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        await writer.start(upstream.status, upstream.reason, headers, length=length)
        try:
            async for chunk in upstream.iter_chunks():
                await writer.write(chunk)
        except RouterError as exc:
            # Too late for an error status: cut the client's connection so it sees a broken answer.
            logger.warning("answer from %s broke off: %s", chosen.node.node_id, exc)
            writer.abort()
            return upstream.status
        await writer.end()
        return upstream.status

    async def write_error(
        self,
        writer: ResponseWriter,
        error: RouterError,
        request: FrontRequest,
        chosen: Candidate | None,
        span: RouteSpan | None,
        *,
        tried: Candidate | None = None,
    ) -> None:
        """The router's own error answer: kind, fixed sentence, request id (router.failures)."""
        headers, body = self.failures.answer(error, request, chosen, span, tried=tried)
        await writer.respond(error.status, headers, body)


def _request_body(request: FrontRequest, outgoing: RawHeaders) -> tuple[AsyncIterator[bytes] | None, bool]:
    """The body to stream, and whether it goes chunked (the client sent it chunked)."""
    if not request.body_exists:
        return None, False
    if request.chunked:
        outgoing.append((b"transfer-encoding", b"chunked"))
        return request.body(), True
    return request.body(), False
