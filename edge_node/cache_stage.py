"""The HTTP cache around the pipeline's execution (``edge_node.cache_flow`` decides):
the lookup stage, the origin fetched through the cache (collapsed misses, stale answers
when it is unreachable), upstream answers settled into the cache, and the background
refresh of an answer served stale-while-revalidate."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edge_node.cache_flow import COLLAPSE_WAIT_S, CacheState, EdgeCache
from edge_node.errors import OriginError
from edge_node.exchange import Exchange, OriginFetcher
from edge_node.metrics import EdgeMetrics

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
