"""Handlers' outbound HTTP on the node: through the node's HTTP cache, traced and counted.

``wasm_host.outbound`` judges each URL against the module's grant and calls a fetcher on
the thread running the guest; here is the node's fetcher. ``NodeOutbound.for_exchange``
makes one per request (``ExecuteWasm`` puts it in ``wasm_host.outbound.CURRENT_FETCHER``
for the run): its ``fetch`` hands the request to the event loop
(``asyncio.run_coroutine_threadsafe``) and blocks only the guest's worker thread until the
answer, bounded by the timeout the host gave (at most what is left of the handler's
deadline). The loop and every other request go on meanwhile.

On the loop a request goes, like a Workers ``fetch``, through the node's RFC 9111 cache
(``EdgeCache``): a GET or HEAD is answered from a fresh entry, revalidated with the stored
validators, or fetched and stored when cacheable, unless the guest asked to bypass the
cache. A ``self`` request (a path of the app's own origin routes) uses the very entry the
route's clients use, so a handler and a browser share one copy; another URL is cached under
its full URL, in memory only. Each request is a CLIENT span of the request's trace with
``traceparent`` sent on, and counted in ``/metrics`` (requests by cache outcome, refusals
by reason, bytes each way).

A fresh hit in memory is answered on the worker thread itself (``fresh_hit``), without the
hop to the loop and back: measured (bench/outbound_fetch.py), each hop made the worker wait
for the GIL behind the busy loop, and a handler making one cached request served a quarter
of the requests/s of the same handler without it. The hit path only reads: a dict lookup
of immutable entries and the pure ``httpcache.policy``; what it would change (the entry's
place in the LRU, the counters, the span) is handed to the loop without waiting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry, Counter

from edge_node.cache_flow import CacheState, EdgeCache
from edge_node.exchange import Exchange
from edge_node.origin import HOP_BY_HOP
from edge_node.outbound_resolver import BlockedAddressError, GuardedResolver
from httpcache import policy
from httpcache.policy import Action
from tracing.attributes import ERROR_TYPE, HTTP_METHOD, HTTP_STATUS, URL_FULL
from tracing.wire import AttributeKey, SpanKind, SpanName, StatusCode, status_field
from wasm_host.outbound import OutboundError, OutboundRequest, OutboundResponse
from wasm_host.outbound_policy import NO_ALLOWANCE, NetworkAllowance, Target
from wasm_host.values import WasmResponse

logger = logging.getLogger(__name__)

K_MODULE = AttributeKey("edgecdn.wasm.module")
K_CACHE = AttributeKey("edgecdn.cache")
K_REFUSED = AttributeKey("edgecdn.outbound.refused")
SPAN = {method: SpanName(f"{method} outbound", SpanKind.CLIENT) for method in ("GET", "HEAD", "POST")}
REFUSED_SPAN = SpanName("outbound refused", SpanKind.INTERNAL)
NOT_CACHED = "BYPASS"
# Beyond the host's own timeout: how long a worker waits for a loop that does not answer.
LOOP_GRACE_S = 1.0


class OutboundMetrics:
    """The node's outbound counters (prometheus_client's, which lock: a refusal is counted
    on the guest's worker thread, a fetch on the loop)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "edge_outbound_requests",
            "Handlers' outbound requests, by module and outcome (x-cache value, or error).",
            ("module", "result"),
            registry=registry,
        )
        self.refusals = Counter(
            "edge_outbound_refusals",
            "Handlers' outbound requests refused before any socket, by module and reason.",
            ("module", "reason"),
            registry=registry,
        )
        self.bytes = Counter(
            "edge_outbound_bytes",
            "Body bytes of handlers' outbound requests, by module and direction (sent, received).",
            ("module", "direction"),
            registry=registry,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    """Where one outbound request really goes: its URL and the cache key it is stored under."""

    url: str
    key: str
    path: str
    query: str
    disk: bool  # a self request shares its origin route's entries, disk tier included


def upstream_for(target: Target, exchange: Exchange) -> Upstream:
    """The upstream of ``target``: a ``self`` path goes to its origin route's origin (the
    same URL and cache key as the route's own clients); OutboundError when no origin route
    of the request's app matches it."""
    path, _, query = target.path_query.partition("?")
    if not target.is_self:
        return Upstream(url=target.url, key=target.url, path=path, query=query, disk=False)
    app = exchange.app
    match = app.match(path) if app is not None else None
    if match is None or match.origin is None:
        raise OutboundError(
            "self-not-origin",
            f"{target.path_query} is not an origin route of this app (self grants only those)",
        )
    return Upstream(
        url=match.origin.rstrip("/") + target.path_query,
        key=policy.primary_key(path, query),
        path=path,
        query=query,
        disk=True,
    )


def outbound_session(allowance: NetworkAllowance) -> aiohttp.ClientSession:
    """The node's session for handlers' requests: names resolved through ``GuardedResolver``
    (no link-local or metadata address behind a name), bodies as sent (no decompression)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allowance))
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


class NodeOutbound:
    """The node's outbound service: one aiohttp session and the node's cache, shared."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        cache: EdgeCache,
        metrics: OutboundMetrics,
        allowance: NetworkAllowance = NO_ALLOWANCE,
        max_body_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.session = session
        self.cache = cache
        self.metrics = metrics
        self.allowance = allowance
        self.max_body_bytes = max_body_bytes
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()

    def fresh_hit(self, request: OutboundRequest, exchange: Exchange) -> OutboundResponse | None:
        """A fresh answer from the memory tier, read on any thread; None for anything else
        (a miss, a stale or revalidated entry, the disk tier: those go through the loop)."""
        if request.bypass_cache or request.method not in ("GET", "HEAD"):
            return None
        started = time.perf_counter()
        try:
            upstream = upstream_for(request.target, exchange)
        except OutboundError:
            return None  # the loop's path refuses it, counted and traced
        # Safe off the loop: the tier is only written on it, and a peek is one dict read.
        variants = self.cache.store.memory.peek(upstream.key)
        if not variants:
            return None
        parsed = policy.read_request(request.method, upstream.path, upstream.query, request.headers)
        cache_request = dataclasses.replace(parsed, key=upstream.key)
        now = time.time()
        selection = policy.select(cache_request, variants, now)
        if selection.action is not Action.FRESH or selection.entry is None:
            return None
        answer = policy.answer(cache_request, selection.entry, now)
        response = _to_guest(answer.status, answer.headers, answer.body, policy.HIT)
        ended = time.perf_counter()
        self.loop.call_soon_threadsafe(self._after_hit, request, exchange, upstream, response, started, ended)
        return response

    def _after_hit(  # noqa: PLR0917 - one hit's facts
        self,
        request: OutboundRequest,
        exchange: Exchange,
        upstream: Upstream,
        response: OutboundResponse,
        started: float,
        ended: float,
    ) -> None:
        """On the loop, after a hit answered on a worker: the LRU touch, counters, span."""
        self.cache.store.variants(upstream.key)
        self.metrics.requests.labels(request.module, policy.HIT).inc()
        self.metrics.bytes.labels(request.module, "received").inc(len(response.body))
        trace = exchange.trace
        if trace is not None:
            attributes = (
                URL_FULL.str(upstream.url)
                + HTTP_METHOD.str(request.method)
                + K_MODULE.str(request.module)
                + HTTP_STATUS.int(response.status)
                + K_CACHE.str(policy.HIT)
            )
            name = SPAN.get(request.method) or SpanName(f"{request.method} outbound", SpanKind.CLIENT)
            trace.emit(name, trace.ns_at(started), trace.ns_at(ended), attributes)

    def for_exchange(self, exchange: Exchange) -> ExchangeFetcher:
        """The fetcher of one request's handler run."""
        return ExchangeFetcher(self, exchange)

    async def fetch(self, request: OutboundRequest, exchange: Exchange, timeout_s: float) -> OutboundResponse:
        """One outbound request on the loop: through the cache, traced, counted."""
        started = time.perf_counter()
        trace = exchange.trace
        span_id = trace.new_span_id() if trace is not None else b""
        result = "error"
        response: OutboundResponse | None = None
        error: OutboundError | None = None
        upstream: Upstream | None = None
        try:
            upstream = upstream_for(request.target, exchange)
            response = await self._through_cache(request, upstream, exchange, span_id, timeout_s)
            result = response.cache_status or NOT_CACHED
            return response
        except OutboundError as exc:
            error = exc
            raise
        finally:
            module = request.module
            self.metrics.requests.labels(module, result).inc()
            self.metrics.bytes.labels(module, "sent").inc(len(request.body))
            if response is not None:
                self.metrics.bytes.labels(module, "received").inc(len(response.body))
            if trace is not None:
                attributes = (
                    URL_FULL.str(upstream.url if upstream is not None else request.target.url)
                    + HTTP_METHOD.str(request.method)
                    + K_MODULE.str(module)
                )
                status = b""
                if response is not None:
                    attributes += HTTP_STATUS.int(response.status) + K_CACHE.str(result)
                if error is not None:
                    attributes += ERROR_TYPE.str(error.reason)
                    status = status_field(StatusCode.ERROR, error.message)
                start_ns = trace.ns_at(started)
                name = SPAN.get(request.method) or SpanName(f"{request.method} outbound", SpanKind.CLIENT)
                trace.emit(
                    name, start_ns, trace.ns_at(time.perf_counter()), attributes, status, span_id=span_id
                )

    async def _through_cache(
        self,
        request: OutboundRequest,
        upstream: Upstream,
        exchange: Exchange,
        span_id: bytes,
        timeout_s: float,
    ) -> OutboundResponse:
        cache = self.cache
        state: CacheState | None = None
        if not request.bypass_cache and request.method in ("GET", "HEAD"):
            state = self._lookup(request, upstream)
            if state.on_disk:
                _, answer, status = await cache.from_disk(state)
            else:
                _, answer, status = cache.decide(state)
            if answer is not None:
                return _to_guest(answer.status, answer.headers, answer.body, status)
        headers = list(request.headers) if state is None else cache.upstream_headers(state)
        try:
            fetched = await self._send(request, upstream, headers, exchange, span_id, timeout_s)
        except OutboundError:
            stale = None if state is None else cache.stale_on_failure(state)
            if stale is None:
                raise
            return _to_guest(stale.status, stale.headers, stale.body, policy.STALE)
        if state is None:
            return _to_guest(fetched.status, fetched.headers, fetched.body, None)
        answer, status = cache.settle(state, fetched, headers)
        return _to_guest(answer.status, answer.headers, answer.body, status)

    def _lookup(self, request: OutboundRequest, upstream: Upstream) -> CacheState:
        parsed = policy.read_request(request.method, upstream.path, upstream.query, request.headers)
        state = CacheState(
            request=dataclasses.replace(parsed, key=upstream.key),
            path=upstream.path,
            query=upstream.query,
            upstream_method="GET",
            origin=upstream.disk,
        )
        state.request_time = time.time()
        cache = self.cache
        if upstream.disk and cache.disk is not None and not cache.store.variants(upstream.key):
            state.on_disk = cache.disk.holds(upstream.key)
        return state

    async def _send(  # noqa: PLR0917 - one request's parts
        self,
        request: OutboundRequest,
        upstream: Upstream,
        headers: list[tuple[str, str]],
        exchange: Exchange,
        span_id: bytes,
        timeout_s: float,
    ) -> WasmResponse:
        sent = CIMultiDict((k, v) for k, v in headers if k.lower() not in HOP_BY_HOP)
        if exchange.trace is not None:
            sent["traceparent"] = exchange.trace.traceparent(span_id)
        limit = min(request.max_body_bytes, self.max_body_bytes)
        method = "GET" if request.method == "HEAD" and not request.bypass_cache else request.method
        try:
            async with asyncio.timeout(timeout_s):
                async with self.session.request(
                    method,
                    upstream.url,
                    headers=sent,
                    data=request.body or None,
                    allow_redirects=False,  # the host follows redirects, each one checked
                ) as response:
                    body = await response.content.read(limit + 1)
                    kept = tuple(
                        (k.lower(), v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP
                    )
        except TimeoutError as exc:
            raise OutboundError(
                "timeout", f"{upstream.url} did not answer within {timeout_s * 1000:.0f} ms"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddressError):
                raise OutboundError("blocked-address", str(exc.os_error)) from exc
            raise OutboundError("failed", f"{upstream.url} failed: {exc!r}") from exc
        except aiohttp.ClientError as exc:
            raise OutboundError("failed", f"{upstream.url} failed: {exc!r}") from exc
        if len(body) > limit:
            raise OutboundError("too-many-bytes", f"the answer of {upstream.url} exceeds {limit} bytes")
        return WasmResponse(status=response.status, headers=kept, body=body)

    def refused(self, module: str, url: str, reason: str, message: str, exchange: Exchange) -> None:
        """Count a request the host refused, and give it a span (from any thread)."""
        self.metrics.refusals.labels(module, reason).inc()
        trace = exchange.trace
        if trace is not None:
            now = time.perf_counter()
            attributes = (
                URL_FULL.str(url) + K_MODULE.str(module) + K_REFUSED.str(reason) + ERROR_TYPE.str(reason)
            )
            status = status_field(StatusCode.ERROR, message)
            # Span ids come from the trace's counter, which the loop's thread owns.
            self.loop.call_soon_threadsafe(
                lambda: trace.emit(REFUSED_SPAN, trace.ns_at(now), trace.ns_at(now), attributes, status)
            )


def _to_guest(
    status: int, headers: tuple[tuple[str, str], ...], body: bytes, cache_status: str | None
) -> OutboundResponse:
    shown = headers if cache_status is None else (*headers, ("x-cache", cache_status))
    return OutboundResponse(status=status, headers=shown, body=body, cache_status=cache_status)


class ExchangeFetcher:
    """``wasm_host.outbound.OutboundFetcher`` for one request's handler run."""

    __slots__ = ("_exchange", "_node")

    def __init__(self, node: NodeOutbound, exchange: Exchange) -> None:
        self._node = node
        self._exchange = exchange

    @property
    def allowance(self) -> NetworkAllowance:
        return self._node.allowance

    def fetch(self, request: OutboundRequest, timeout_s: float) -> OutboundResponse:
        """On the guest's worker thread: the fetch runs on the loop; this thread waits."""
        node = self._node
        if threading.get_ident() == node.loop_thread:
            raise OutboundError("unavailable", "outbound HTTP cannot wait on the event loop's own thread")
        hit = node.fresh_hit(request, self._exchange)
        if hit is not None:
            return hit
        future = asyncio.run_coroutine_threadsafe(node.fetch(request, self._exchange, timeout_s), node.loop)
        try:
            return future.result(timeout_s + LOOP_GRACE_S)
        except TimeoutError as exc:
            future.cancel()
            raise OutboundError("timeout", f"no answer within {timeout_s * 1000:.0f} ms") from exc

    def refused(self, module: str, url: str, reason: str, message: str) -> None:
        self._node.refused(module, url, reason, message, self._exchange)
