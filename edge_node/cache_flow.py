"""The edge node's HTTP cache in the request pipeline: ``httpcache``'s policy over its stores.

Origin routes and wasm handlers alike: a request that may use the cache is looked up
before execution (``lookup``, synchronous: a hit is answered from the parser's callback);
what comes back from upstream (the origin, or the handler) is settled after it
(``settle``): stored, merged after a 304, swapped for a stale answer when upstream failed,
or answered from the entry just stored (a client's conditional or Range request). Unsafe
methods invalidate what they name (RFC 9111 4.4).

The cache's own upstream request is not the client's: it drops the client's conditionals
and Range (the cache fetches whole answers to store them) and carries the stored entry's
validators; a cacheable HEAD goes upstream as a GET (nginx's proxy_cache_convert_head).
Concurrent misses for one key are collapsed (``Collapser``): one goes upstream, the
others wait for it, bounded, and look again.

The disk tier (``--cache-dir``) holds origin answers, as nginx's proxy_cache does, and is
never touched on the event loop (``httpcache.offloop``): a memory miss whose key is on disk
continues as a task that reads it (``from_disk``), and writes are queued to the disk's
thread. A handler's answers stay in memory only: running the handler again costs less than
a file read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from httpcache import policy
from httpcache.model import PurgeSelector, StoredResponse
from httpcache.offloop import OffLoopDisk
from httpcache.policy import Action, CacheRequest
from httpcache.store import TieredCache
from wasm_host.values import WasmResponse

# How long a collapsed miss waits for the request that went upstream before going itself:
# as Varnish and nginx (proxy_cache_lock_timeout, 5 s), a stuck origin costs each waiter
# this much at most.
COLLAPSE_WAIT_S = 5.0
GATEWAY_TIMEOUT_BODY = b'{"error": "only-if-cached", "message": "no stored answer may be used"}'


@dataclass(slots=True)
class CacheState:
    """What the cache knows about one request between lookup and settle."""

    request: CacheRequest
    path: str
    query: str
    # A wasm request with nothing stored under its key: parsed only if the handler's
    # answer carries cache directives (most never do, and they pay nothing).
    lazy: bool = False
    entry: StoredResponse | None = None  # the variant upstream revalidates, or a stale fallback
    upstream_method: str = "GET"
    request_time: float = 0.0
    refresh: bool = False  # served stale-while-revalidate: refresh it in the background
    waited: bool = False  # already waited once for a collapsed miss
    origin: bool = False  # an origin route's request (its answers also go to the disk tier)
    on_disk: bool = False  # missed in memory, its key is on disk: ``from_disk`` decides


@dataclass(slots=True)
class Collapser:
    """One upstream request per key at a time; the others wait for its outcome."""

    _inflight: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    def leader(self, key: str) -> asyncio.Future[None] | None:
        """None when this request is to go upstream (it must call ``done``); else the future
        of the one that is."""
        waiting = self._inflight.get(key)
        if waiting is not None:
            return waiting
        self._inflight[key] = asyncio.get_running_loop().create_future()
        return None

    def done(self, key: str) -> None:
        waiting = self._inflight.pop(key, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)


class EdgeCache:
    """The pipeline's cache: ``lookup`` before execution, ``settle`` after it."""

    def __init__(
        self, store: TieredCache, *, clock: Callable[[], float], disk: OffLoopDisk | None = None
    ) -> None:
        self.store = store
        self.disk = disk
        self._clock = clock
        self.collapser = Collapser()
        self.refreshing: set[str] = set()

    def lookup(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], *, origin: bool
    ) -> tuple[CacheState | None, WasmResponse | None, str | None]:
        """(state for settle, an answer from the cache, the x-cache value).

        A wasm route with nothing stored under its key costs one dict lookup: handlers that
        never send cache directives never pay for the policy.
        """
        key = policy.primary_key(path, query)
        variants = self.store.variants(key)
        if not origin and not variants and method == "GET":
            lazy = CacheRequest(method=method, key=key, headers=(), cacheable=False, unsafe=False)
            return CacheState(request=lazy, path=path, query=query, lazy=True), None, None
        request = policy.read_request(method, path, query, tuple(headers))
        state = CacheState(
            request=request,
            path=path,
            query=query,
            # An origin is asked for a HEAD's GET, to store it; a handler sees the HEAD itself.
            upstream_method="GET" if method == "HEAD" and origin else method,
            origin=origin,
        )
        state.request_time = self._clock()
        if not request.cacheable:
            return state, None, policy.BYPASS if origin else None
        if not variants and origin and self.disk is not None and self.disk.holds(key):
            state.on_disk = True
            return state, None, None
        return self.decide(state, variants)

    async def from_disk(self, state: CacheState) -> tuple[CacheState, WasmResponse | None, str | None]:
        """``decide`` for a request whose key was on disk: read it off the loop, keep what
        was read in memory (promoted, as a disk hit is), then decide."""
        state.on_disk = False
        assert self.disk is not None
        variants = await self.disk.variants(state.request.key)
        for entry in reversed(variants):  # the most recent ends most recently used
            self.store.put(entry)
        return self.decide(state, variants)

    def decide(
        self, state: CacheState, variants: tuple[StoredResponse, ...] | None = None
    ) -> tuple[CacheState, WasmResponse | None, str | None]:
        request = state.request
        now = self._clock()
        if variants is None:
            variants = self.store.variants(request.key)
        selection = policy.select(request, variants, now)
        action, entry = selection.action, selection.entry
        state.entry = entry
        if action is Action.FRESH and entry is not None:
            return state, self.answer(request, entry, now), policy.HIT
        if action in (Action.STALE, Action.STALE_WHILE_REVALIDATE) and entry is not None:
            state.refresh = action is Action.STALE_WHILE_REVALIDATE
            return state, self.answer(request, entry, now), policy.STALE
        if action is Action.GATEWAY_TIMEOUT:
            answer = WasmResponse(
                status=504, headers=(("content-type", "application/json"),), body=GATEWAY_TIMEOUT_BODY
            )
            return state, answer, policy.MISS
        return state, None, policy.MISS

    def upstream_headers(self, state: CacheState) -> list[tuple[str, str]]:
        """The headers the cache sends upstream for this request."""
        entry = state.entry if state.request.cacheable else None
        return list(policy.upstream_headers(state.request, entry))

    def answer(self, request: CacheRequest, entry: StoredResponse, now: float) -> WasmResponse:
        answer = policy.answer(request, entry, now)
        return WasmResponse(status=answer.status, headers=answer.headers, body=answer.body)

    def settle(
        self, state: CacheState, response: WasmResponse, headers: list[tuple[str, str]]
    ) -> tuple[WasmResponse, str | None]:
        """What the client gets for upstream's ``response``, and the x-cache value; stores,
        merges or invalidates on the way. ``headers``: the request's (for a lazy state)."""
        if state.lazy:
            if not carries_directives(response):
                return response, None
            state.request = policy.read_request(state.request.method, state.path, state.query, tuple(headers))
            state.lazy = False
        request = state.request
        if request.unsafe and 200 <= response.status < 400:
            for key in policy.invalidation_keys(request, response.status, response.headers):
                self.store.remove_key(key)
                if self.disk is not None:
                    self.disk.remove_key(key)
        if not request.cacheable:
            return self._pass(response), None
        return self._settle_cacheable(state, response)

    def _settle_cacheable(self, state: CacheState, response: WasmResponse) -> tuple[WasmResponse, str]:
        request, entry = state.request, state.entry
        if state.upstream_method == "HEAD":  # a handler's answer to a HEAD has no body to store
            return self._pass(response), policy.MISS
        now = self._clock()
        if response.status == 304 and entry is not None:
            fresh = policy.freshen(
                entry, response.headers, request_time=state.request_time, response_time=now
            )
            self.store.replace(entry, fresh)
            if self.disk is not None and state.origin:
                self.disk.replace(entry, fresh)
            return self.answer(request, fresh, now), policy.REVALIDATED
        if (
            response.status >= 500
            and entry is not None
            and policy.may_serve_stale_on_error(request, entry, now, unreachable=False)
        ):
            return self.answer(request, entry, now), policy.STALE
        stored = policy.to_store(
            request,
            response.status,
            response.headers,
            response.body,
            request_time=state.request_time or now,
            response_time=now,
        )
        if stored is not None:
            in_memory = self.store.put(stored)
            disk = self.disk if state.origin else None
            if disk is not None:
                disk.put(stored)
            if in_memory or disk is not None:
                # The client's own conditional, Range or HEAD is answered from what was stored.
                return self.answer(request, stored, now), policy.MISS
        return self._pass(response), policy.MISS

    def stale_on_failure(self, state: CacheState) -> WasmResponse | None:
        """A stale answer for a request whose upstream was unreachable, when allowed."""
        entry = state.entry
        if entry is None or not state.request.cacheable:
            return None
        now = self._clock()
        if policy.may_serve_stale_on_error(state.request, entry, now, unreachable=True):
            return self.answer(state.request, entry, now)
        return None

    async def purge(self, selector: PurgeSelector, soft: bool) -> int:
        """The control plane's CachePurge: entries dropped (or marked stale when ``soft``)."""
        matched = self.store.purge(selector, soft=soft)
        if self.disk is not None:
            matched = max(matched, await self.disk.purge(selector, soft=soft))
        return matched

    @staticmethod
    def _pass(response: WasmResponse) -> WasmResponse:
        headers = policy.client_headers(response.headers)
        if headers is response.headers:
            return response
        return WasmResponse(status=response.status, headers=headers, body=response.body)


def carries_directives(response: WasmResponse) -> bool:
    """Whether a handler's answer could be stored at all: it says how long it stays fresh."""
    for name, _ in response.headers:
        if name in ("cache-control", "expires", "cdn-cache-control", "edgecdn-cache-control"):
            return True
    return False
