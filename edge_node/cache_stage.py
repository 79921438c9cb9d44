"""The HTTP cache around the pipeline's execution (``edge_node.cache_flow`` decides):
the lookup stage, the origin fetched through the cache (collapsed misses, stale answers
when it is unreachable), upstream answers settled into the cache, and the background
refresh of an answer served stale-while-revalidate.

And the cache's fast path (``FreshHits``): a plain request (no cache directives,
conditionals, Range, credentials, trace or reserved fields) for a key whose one variant is
fresh is answered from the answer the full pipeline made for it the first time, kept
pre-encoded beside the entry in the memory tier (``HitPlan``): only its age, the date and
its timing are new. Measured under ``wrk -c50`` this halves the CPU time of a hit
(bench/README.md, "Cache hits against nginx"). Anything else goes the whole way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edge_node.app import LoadedApp
from edge_node.cache_flow import COLLAPSE_WAIT_S, CacheState, EdgeCache
from edge_node.errors import OriginError
from edge_node.exchange import Exchange, OriginFetcher
from edge_node.metrics import EdgeMetrics
from geo.forwarding import FORWARDING_HEADERS, RESERVED_HEADER_PREFIXES, RESERVED_HEADERS
from geo.lookup import UNKNOWN, Location
from httpcache.model import StoredResponse
from httpcache.policy import HIT
from httpfront.flow import RawHeaders
from httpfront.messages import BODILESS_STATUSES
from runtime.hotmetrics import CounterChild

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheLookup:
    """Answer from the shared cache when a stored answer may be used (origin routes, and
    wasm handlers whose answers carried cache directives); else say what goes upstream."""

    cache: EdgeCache
    metrics: EdgeMetrics
    name: str = "cache"

    def run(self, exchange: Exchange) -> None:
        match = exchange.match
        if match is None:
            return
        state, answer, status = self.cache.lookup(
            exchange.method, exchange.path, exchange.query, exchange.headers, origin=match.origin is not None
        )
        exchange.cache = state
        exchange.cache_status = status
        if answer is not None:
            exchange.response = answer
            self.metrics.count_cache(status, exchange.location.country)
        elif state is not None and state.request.cacheable:
            exchange.headers = self.cache.upstream_headers(state)


@dataclass(slots=True, kw_only=True)
class CacheThrough:
    """Execution's way through the cache: origin fetches, settling, background refreshes."""

    cache: EdgeCache
    metrics: EdgeMetrics
    origin: OriginFetcher
    run_wasm: Callable[[Exchange], Awaitable[None]]
    _refreshes: set[asyncio.Task[None]] = field(default_factory=set)  # held: tasks are weakly kept

    async def fetch_origin(self, exchange: Exchange, origin: str) -> None:
        """The origin's answer through the cache: collapsed with concurrent misses for the
        same key, and a stale answer when the origin cannot be reached and one may be used."""
        state = exchange.cache
        if state is not None and state.on_disk:
            _, answer, status = await self.cache.from_disk(state)
            if answer is not None:
                exchange.response, exchange.cache_status = answer, status
                self.metrics.count_cache(status, exchange.location.country)
                return
            exchange.headers = self.cache.upstream_headers(state)  # with the validators read
        collapsing = state is not None and state.request.cacheable and not state.request.no_cache
        key = state.request.key if state is not None else ""
        if collapsing and state is not None:
            waiting = self.cache.collapser.leader(key)
            if waiting is not None:
                await asyncio.wait({waiting}, timeout=COLLAPSE_WAIT_S)
                _, answer, status = self.cache.decide(state)
                if answer is not None:
                    exchange.response, exchange.cache_status = answer, status
                    self.metrics.count_cache(status, exchange.location.country)
                    return
                collapsing = False  # still nothing usable: go upstream without leading
        try:
            try:
                exchange.response = await self.origin.fetch(exchange, origin)
            except OriginError:
                stale = None if state is None else self.cache.stale_on_failure(state)
                if stale is None:
                    raise
                exchange.response, exchange.cache_status = stale, "STALE"
                self.metrics.count_cache("STALE", exchange.location.country)
                return
            self.settle(exchange)
        finally:
            if collapsing:
                self.cache.collapser.done(key)

    def settle(self, exchange: Exchange) -> None:
        """CacheStore: upstream's answer through the cache (stored, merged, invalidated)."""
        state, response = exchange.cache, exchange.response
        if state is None or response is None:
            return
        exchange.response, status = self.cache.settle(state, response, exchange.headers)
        if status is not None:
            exchange.cache_status = status
            self.metrics.count_cache(status, exchange.location.country)

    def refresh_if_asked(self, exchange: Exchange) -> None:
        """Served stale-while-revalidate: one background refresh per key."""
        state = exchange.cache
        if state is None or not state.refresh or state.request.key in self.cache.refreshing:
            return
        self.cache.refreshing.add(state.request.key)
        refresh = Exchange(
            method=state.upstream_method,
            path=exchange.path,
            query=exchange.query,
            headers=self.cache.upstream_headers(state),
            body=b"",
            peer=exchange.peer,
            host=exchange.host,
            port=exchange.port,
            client=exchange.client,
            location=exchange.location,
            match=exchange.match,
            app=exchange.app,
            cache=CacheState(
                request=state.request,
                path=state.path,
                query=state.query,
                entry=state.entry,
                origin=state.origin,
            ),
        )
        task = asyncio.get_running_loop().create_task(self._refresh(refresh), name="edge-cache-refresh")
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh(self, exchange: Exchange) -> None:
        assert exchange.cache is not None
        key = exchange.cache.request.key
        try:
            match = exchange.match
            assert match is not None
            if match.origin is not None:
                exchange.response = await self.origin.fetch(exchange, match.origin)
            else:
                await self.run_wasm(exchange)
            self.settle(exchange)
        except Exception as exc:  # noqa: BLE001 - a failed refresh leaves the stale entry
            logger.info("background refresh of %s failed: %r", key, exc)
        finally:
            self.cache.refreshing.discard(key)


# Request fields that make a hit more than a stored answer replayed: the client's own cache
# directives, conditionals and Range (the policy answers those), credentials, a trace to
# continue, and the fields a client may not set (the pipeline's first stages deal with them).
_NOT_PLAIN = frozenset(
    {
        b"cache-control", b"pragma", b"authorization", b"if-none-match", b"if-modified-since",
        b"if-range", b"range", b"traceparent", b"tracestate",
        *(name.encode() for name in RESERVED_HEADERS | FORWARDING_HEADERS),
    }
)  # fmt: skip
_NOT_PLAIN_PREFIXES = tuple(prefix.encode() for prefix in RESERVED_HEADER_PREFIXES)


@dataclass(frozen=True, slots=True, kw_only=True)
class HitPlan:
    """A fresh stored answer as the full pipeline answered it, pre-encoded: the status line
    and the entry's fields (``head``), the node's fields up to ``x-cache`` (``facts``), the
    ``x-edge-app`` line (``app_line``) and the body's framing line (``framing``)."""

    entry: StoredResponse
    app: LoadedApp
    route: str
    requests: CounterChild  # edge_requests{route, status}, as EdgeMetrics.count_request counts
    head: bytes
    facts: bytes
    app_line: bytes
    framing: bytes


class FreshHits:
    """The cache's fast path: plain requests answered from ``HitPlan`` notes on the memory tier."""

    def __init__(
        self,
        *,
        cache: EdgeCache,
        metrics: EdgeMetrics,
        locate: Callable[[str], Location],
        current_app: Callable[[], LoadedApp | None],
        max_header_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._memory = cache.store.memory
        self._metrics = metrics
        self._locate = locate
        self._current_app = current_app
        self._max_header_bytes = max_header_bytes
        self._clock = clock

    def plain_key(self, method: str, target: bytes, headers: RawHeaders) -> str | None:
        """The cache key of a request the fast path may answer (the key the full path would
        compute), or None: the full path."""
        if method not in {"GET", "HEAD"}:
            return None
        # Percent-escapes (decoded by the full path), an absolute-form target, and an empty
        # query (the key drops its "?") are left to the full path.
        if b"%" in target or not target.startswith(b"/") or target.endswith(b"?"):
            return None
        size = 0
        for name, value in headers:
            size += len(name) + len(value) + 4
            lower = name.lower()
            if lower in _NOT_PLAIN or lower.startswith(_NOT_PLAIN_PREFIXES):
                return None
        if size > self._max_header_bytes:
            return None  # the full path answers 431
        return target.decode("latin-1")

    def find(self, key: str, peer: str) -> tuple[HitPlan, int] | None:
        """The plan for ``key`` and the answer's age when its entry is fresh (counted as a
        hit for the client's country); None when the full path must decide."""
        plan = self._memory.noted(key)
        if not isinstance(plan, HitPlan) or plan.app is not self._current_app():
            return None
        entry = plan.entry
        age = entry.corrected_initial_age + (self._clock() - entry.response_time)
        if age >= entry.freshness_lifetime:
            return None
        try:
            location = self._locate(peer)
        except ValueError:
            location = UNKNOWN  # e.g. a unix-socket peer, as the geo stage answers it
        self._metrics.count_cache(HIT, location.country)
        return plan, max(0, int(age))

    def replayable(self, key: str, exchange: Exchange) -> StoredResponse | None:
        """The entry the full path answered a plain request for ``key`` with, if a replay
        reproduces that answer: a fresh hit, varying on nothing, with a body."""
        state = exchange.cache
        if exchange.cache_status != HIT or state is None or state.refresh or state.request.key != key:
            return None
        entry = state.entry
        if entry is None or entry.vary or entry.status in BODILESS_STATUSES:
            return None
        return entry

    def keep(self, key: str, plan: HitPlan) -> None:
        """Keep ``plan`` beside its entry while that is the key's only variant."""
        self._memory.note(key, plan.entry, plan)
