"""The router's data plane: locate the client, choose a node, emulate the WAN, proxy.

For each request: the client address (the peer, or the forwarding chain when the peer is
a trusted proxy), its location, the policy's candidates, then the request goes to the
first candidate over a keep-alive pool, bodies streamed both ways. ``X-Forwarded-For``
gets the client appended (edge nodes trust the router), and geo or edge headers an
untrusted client sent are removed, so nobody can pretend to be elsewhere.

Failures: a connect failure ejects the node (passive health) and an idempotent request
is retried once on the next candidate; so is one whose connection was reset before any
answer, when it had no body to resend. Every failure is a JSON error for that request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from geo.forwarding import IPNetwork, is_reserved_header, is_trusted, resolve_client
from geo.latency import Coordinate, LatencyModel
from geo.lookup import UNKNOWN, GeoLocator, Location
from router.errors import NoHealthyNodeError, RouterError, UpstreamTimeoutError, UpstreamUnavailableError
from router.fleet import Fleet
from router.metrics import RouterMetrics
from router.policy import Candidate, ClientPlace, NodeView, RoutingPolicy
from router.telemetry import RouterTelemetry, RouteSpan

logger = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 7.6.1) are for one connection, never forwarded.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
     "proxy-authenticate", "proxy-authorization"}
)  # fmt: skip
# aiohttp frames the response we send, so the upstream's framing headers do not pass.
RESPONSE_SKIP = HOP_BY_HOP | {"content-length"}
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
PIN_HEADER = "x-edge-pin"
ROUTE_HEADER = "x-edge-route"
# Answers up to this size are read whole and sent in one write; larger ones are streamed.
BUFFER_LIMIT = 256 * 1024
MAX_ATTEMPTS = 2
# The client's own headers pass as they are; aiohttp must not add its defaults.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


@dataclass(frozen=True, slots=True, kw_only=True)
class WanSettings:
    """WAN emulation: delay each direction by the modeled one-way latency (with jitter)."""

    enabled: bool
    latency: LatencyModel
    rng: random.Random

    def one_way_ms(self, location: Location, region: str) -> float:
        if not self.enabled or location.latitude is None or location.longitude is None:
            return 0.0
        origin = Coordinate(latitude=location.latitude, longitude=location.longitude)
        return self.latency.one_way_delay_ms(origin, region, self.rng)  # type: ignore[arg-type]


class _AttemptFailedError(Exception):
    """One attempt failed. ``sent_nothing``: the node never saw the request (a connect
    failure), so even a request with a body may go elsewhere; ``retry=False``: no retry."""

    def __init__(self, error: RouterError, *, sent_nothing: bool = False, retry: bool = True) -> None:
        super().__init__(error.message)
        self.error = error
        self.sent_nothing = sent_nothing
        self.retry = retry

    def may_retry(self, *, idempotent: bool, bodiless: bool) -> bool:
        return self.retry and (self.sent_nothing or (idempotent and bodiless))


class RouterHandler:
    """The aiohttp request handler for everything that is not an admin path."""

    def __init__(
        self,
        *,
        fleet: Fleet,
        policy: RoutingPolicy,
        locator: GeoLocator,
        session: aiohttp.ClientSession,
        trusted: tuple[IPNetwork, ...],
        wan: WanSettings,
        metrics: RouterMetrics,
        telemetry: RouterTelemetry | None,
        upstream_timeout_s: float,
    ) -> None:
        self._fleet = fleet
        self._policy = policy
        self.locator = locator
        self._session = session
        self._trusted = trusted
        self._wan = wan
        self._metrics = metrics
        self._telemetry = telemetry
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=upstream_timeout_s, sock_read=upstream_timeout_s
        )

    def locate(self, address: str) -> Location:
        try:
            return self.locator.locate(address)
        except ValueError:
            return UNKNOWN  # a peer address we cannot parse has no place, but may be served

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        peer = request.remote or ""
        headers = request.headers
        trusted_peer = is_trusted(peer, self._trusted)
        if trusted_peer:
            client = resolve_client(
                peer,
                forwarded_for=headers.get("x-forwarded-for"),
                forwarded=headers.get("forwarded"),
                trusted=self._trusted,
            ).address
        else:
            client = peer
        location = self.locate(client)
        place = ClientPlace(
            address=client,
            latitude=location.latitude,
            longitude=location.longitude,
            pin=headers.get(PIN_HEADER),
        )
        span = self._telemetry.begin(headers, client, location) if self._telemetry is not None else None
        candidates = self._policy.candidates(place, self._fleet.views())
        idempotent = request.method in IDEMPOTENT
        bodiless = not request.body_exists
        error: RouterError = NoHealthyNodeError("no healthy edge node can serve this request")
        response: web.StreamResponse | None = None
        chosen: Candidate | None = None
        for attempt in range(MAX_ATTEMPTS):
            chosen = next(candidates, None)
            if chosen is None:
                break
            try:
                response = await self._attempt(
                    request,
                    chosen,
                    client,
                    location,
                    trusted_peer=trusted_peer,
                    span=span,
                    first=attempt == 0,
                )
                break
            except _AttemptFailedError as failure:
                error = failure.error
                self._metrics.upstream_failure(chosen.node.node_id, error.kind)
                if not failure.may_retry(idempotent=idempotent, bodiless=bodiless):
                    break
                self._metrics.retried()
        if response is None:
            response = _error_response(error, chosen)
        self._metrics.observe(chosen, response.status, time.perf_counter() - started)
        if span is not None and self._telemetry is not None:
            self._telemetry.finish(span, request, chosen, response.status)
        return response

    async def _attempt(
        self,
        request: web.BaseRequest,
        chosen: Candidate,
        client: str,
        location: Location,
        *,
        trusted_peer: bool,
        span: RouteSpan | None,
        first: bool,
    ) -> web.StreamResponse:
        node = chosen.node
        if first:
            delay_ms = self._wan.one_way_ms(location, node.region)
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
                if span is not None:
                    span.wan_ms += delay_ms
        outgoing = _forward_headers(request, client, trusted_peer=trusted_peer)
        telemetry = self._telemetry if span is not None else None
        hop = telemetry.hop(span, outgoing) if telemetry is not None and span is not None else None
        traffic = self._fleet.sent(node.node_id)
        try:
            upstream = await self._session.request(
                request.method,
                node.url + request.raw_path,
                headers=outgoing,
                data=request.content if request.body_exists else None,
                allow_redirects=False,
                timeout=self._timeout,
                skip_auto_headers=SKIP_AUTO_HEADERS,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            if telemetry is not None and span is not None and hop is not None:
                telemetry.hop_done(span, hop, node, status=None, error=type(exc).__name__)
            raise self._failure(node, exc) from exc
        finally:
            traffic.in_flight -= 1
        if telemetry is not None and span is not None and hop is not None:
            telemetry.hop_done(span, hop, node, status=upstream.status)
        self._fleet.answered(node.node_id, upstream.status)
        try:
            return await self._respond(request, upstream, chosen, location, span)
        finally:
            upstream.release()

    def _failure(self, node: NodeView, exc: BaseException) -> _AttemptFailedError:
        """What a failed attempt means: passive health, the client's error, whether to retry."""
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            self._fleet.connect_failed(node.node_id, str(exc))
            message = f"cannot connect to edge node {node.node_id}: {exc}"
            return _AttemptFailedError(UpstreamUnavailableError(message), sent_nothing=True)
        if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
            # A kept-alive connection died under us (the node restarted or was killed).
            self._fleet.connect_failed(node.node_id, f"{type(exc).__name__}: {exc}")
            message = f"edge node {node.node_id} closed the connection: {exc}"
            return _AttemptFailedError(UpstreamUnavailableError(message))
        if isinstance(exc, TimeoutError):
            message = f"edge node {node.node_id} did not answer within {self._timeout.sock_read:g}s"
            return _AttemptFailedError(UpstreamTimeoutError(message), retry=False)
        return _AttemptFailedError(
            UpstreamUnavailableError(f"edge node {node.node_id} answered badly: {exc}"), retry=False
        )

    async def _respond(
        self,
        request: web.BaseRequest,
        upstream: aiohttp.ClientResponse,
        chosen: Candidate,
        location: Location,
        span: RouteSpan | None,
    ) -> web.StreamResponse:
        headers = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in RESPONSE_SKIP)
        headers[ROUTE_HEADER] = route_header(chosen)
        delay_ms = self._wan.one_way_ms(location, chosen.node.region)
        if span is not None:
            span.wan_ms += delay_ms
        length = upstream.content_length
        if length is not None and length <= BUFFER_LIMIT:
            try:
                body = await upstream.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._fleet.answered(chosen.node.node_id, 502)
                return _error_response(
                    UpstreamUnavailableError(f"edge node {chosen.node.node_id} broke off its answer: {exc}"),
                    chosen,
                )
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000)
            return web.Response(status=upstream.status, reason=upstream.reason, body=body, headers=headers)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


def route_header(chosen: Candidate) -> str:
    rtt = "" if chosen.rtt_ms is None else f"{chosen.rtt_ms:.1f}"
    return f"region={chosen.node.region}; node={chosen.node.node_id}; reason={chosen.reason}; rtt_ms={rtt}"


def _forward_headers(request: web.BaseRequest, client: str, *, trusted_peer: bool) -> CIMultiDict[str]:
    """The request's headers for the edge node: hop-by-hop dropped, forwarding chain extended."""
    outgoing: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower == PIN_HEADER:
            continue
        if not trusted_peer and is_reserved_header(lower):
            continue  # a client's own geo, edge or forwarding claims are never passed on
        if lower in {"x-forwarded-for", "forwarded", "x-real-ip"}:
            continue  # rebuilt below
        outgoing.add(name, value)
    peer = request.remote or client
    chain = request.headers.get("x-forwarded-for") if trusted_peer else None
    outgoing["X-Forwarded-For"] = f"{chain}, {peer}" if chain else peer
    outgoing["X-Forwarded-Proto"] = request.scheme
    return outgoing


def _error_response(error: RouterError, chosen: Candidate | None) -> web.Response:
    headers = {"content-type": "application/json"}
    if chosen is not None:
        headers[ROUTE_HEADER] = route_header(chosen)
    return web.Response(status=error.status, body=json.dumps(error.to_json()).encode(), headers=headers)


def describe_candidates(candidates: Iterable[Candidate]) -> list[dict[str, object]]:
    return [
        {
            "node_id": c.node.node_id,
            "region": c.node.region,
            "url": c.node.url,
            "reason": c.reason,
            "rtt_ms": None if c.rtt_ms is None else round(c.rtt_ms, 1),
        }
        for c in candidates
    ]
