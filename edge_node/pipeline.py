"""The edge request pipeline: explicit stages over one mutable per-request ``Exchange``.

``ResolveClient -> ResolveGeo -> Route -> CacheLookup -> Execute (wasm | origin) ->
CacheStore -> Respond``. Each stage is a small object with a ``name`` (its span and its
``server-timing`` entry). Stages are synchronous where they do no I/O; only the origin
fetch, and a wasm handler the executor has moved to its thread pool, await. So the HTTP
adapter (``edge_node.http_adapter``) runs ``Pipeline.prepare`` and
``Pipeline.execute_now`` straight from the parser's callbacks, and awaits
``Pipeline.execute`` (as a task) only when that is needed: most requests never become a
task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edge_node.app import LoadedApp, LoadedModule, RouteMatch
from edge_node.errors import HandlerFailedError, HeadersTooLargeError, NoAppError, RouteNotFoundError
from edge_node.geo_headers import NodeIdentity, edge_headers, geo_headers
from edge_node.http_cache import CacheKey, ResponseCache, request_allows_cache
from edge_node.metrics import EdgeMetrics
from geo.forwarding import ClientIdentity, IPNetwork, is_reserved_header, resolve_client
from geo.lookup import UNKNOWN, Location
from tracing.lean import RequestTrace
from wasm_host.errors import HandlerError
from wasm_host.executor import WasmExecutor
from wasm_host.values import WasmRequest, WasmResponse


@dataclass(slots=True, kw_only=True)
class Exchange:
    """Everything one request accumulates on its way through the pipeline."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]  # names in lower case
    body: bytes
    peer: str
    scheme: str = "http"
    host: str = "localhost"
    port: int = 80
    client: ClientIdentity | None = None
    location: Location = UNKNOWN
    match: RouteMatch | None = None
    app: LoadedApp | None = None
    response: WasmResponse | None = None
    cache_status: str | None = None
    # (stage name, perf_counter at its start, seconds it took); the failing stage too.
    timings: list[tuple[str, float, float]] = field(default_factory=list)
    failed_stage: str | None = None
    trace: RequestTrace | None = None  # set when this request is sampled
    started: float = 0.0  # perf_counter when the request reached the node: its latency's start
    origin_span_id: bytes = b""  # the origin fetch's span, named in its traceparent

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case, as every name here is)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def route_label(self) -> str:
        return self.match.route if self.match is not None else "<none>"


class Stage(Protocol):
    @property
    def name(self) -> str: ...

    def run(self, exchange: Exchange) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolveClient:
    """Find the real client; drop edge-reserved headers unless a trusted proxy set them."""

    trusted: tuple[IPNetwork, ...]
    max_header_bytes: int
    name: str = "client"

    def run(self, exchange: Exchange) -> None:
        size = sum(len(k) + len(v) + 4 for k, v in exchange.headers)
        if size > self.max_header_bytes:
            raise HeadersTooLargeError(
                f"request headers are {size} bytes; the limit is {self.max_header_bytes}",
                limit_bytes=self.max_header_bytes,
            )
        client = resolve_client(
            exchange.peer,
            forwarded_for=exchange.header("x-forwarded-for"),
            forwarded=exchange.header("forwarded"),
            trusted=self.trusted,
        )
        exchange.client = client
        # Geo/edge facts are recomputed below; what anyone sent is never passed on as-is.
        exchange.headers = [(k, v) for k, v in exchange.headers if not is_reserved_header(k)]
        if client.via_trusted_proxy:
            exchange.headers.append(("x-forwarded-for", client.address))


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolveGeo:
    """Locate the client and add the geo and edge headers a handler reads."""

    locate: Callable[[str], Location]
    node: NodeIdentity
    name: str = "geo"

    def run(self, exchange: Exchange) -> None:
        assert exchange.client is not None
        try:
            exchange.location = self.locate(exchange.client.address)
        except ValueError:
            exchange.location = UNKNOWN  # e.g. a unix-socket peer: not an IP address
        exchange.headers.extend(geo_headers(exchange.location, self.node))


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Match the path against the app's routes (exact beats prefix, longest prefix wins)."""

    current_app: Callable[[], LoadedApp | None]
    name: str = "route"

    def run(self, exchange: Exchange) -> None:
        app = self.current_app()
        if app is None:
            raise NoAppError("this node has no app assigned yet")
        exchange.app = app  # one app for the whole request, even if a swap happens meanwhile
        exchange.match = app.match(exchange.path)
        if exchange.match is None:
            raise RouteNotFoundError(f"no route of app {app.name}@{app.version} matches {exchange.path}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheLookup:
    """Answer origin routes from the shared cache when a fresh entry exists."""

    cache: ResponseCache
    clock: Callable[[], float]
    name: str = "cache"

    def run(self, exchange: Exchange) -> None:
        if exchange.match is None or exchange.match.origin is None:
            return
        if not request_allows_cache(exchange.method, dict(exchange.headers)):
            exchange.cache_status = "BYPASS"
            return
        now = self.clock()
        entry = self.cache.get(CacheKey.for_request(exchange.method, exchange.path, exchange.query), now=now)
        if entry is None:
            exchange.cache_status = "MISS"
            return
        exchange.cache_status = "HIT"
        headers = (*entry.headers, ("age", str(entry.age(now))))
        body = b"" if exchange.method == "HEAD" else entry.body
        exchange.response = WasmResponse(status=entry.status, headers=headers, body=body)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecuteWasm:
    """Run the route's module with the request (a fresh sandboxed instance per request)."""

    executor: WasmExecutor
    metrics: EdgeMetrics
    name: str = "wasm"

    def runs_now(self, exchange: Exchange) -> bool:
        """True when this request's handler runs inline (``run_now``), not on the thread pool."""
        return self.executor.runs_inline(self._module(exchange).handler)

    def run_now(self, exchange: Exchange) -> None:
        module = self._module(exchange)
        with _Handling(self.metrics, exchange.route_label, module):
            exchange.response = self.executor.handle_inline(module.handler, _wasm_request(exchange))

    async def run(self, exchange: Exchange) -> None:
        module = self._module(exchange)
        with _Handling(self.metrics, exchange.route_label, module):
            exchange.response = await self.executor.handle(module.handler, _wasm_request(exchange))

    @staticmethod
    def _module(exchange: Exchange) -> LoadedModule:
        match, app = exchange.match, exchange.app
        assert match is not None
        assert app is not None
        assert match.module is not None
        return app.modules[match.module]


def _wasm_request(exchange: Exchange) -> WasmRequest:
    match = exchange.match
    assert match is not None
    return WasmRequest(
        method=exchange.method,
        path=exchange.path,
        query=exchange.query,
        headers=tuple(exchange.headers),
        body=exchange.body,
        remote_addr=exchange.client.address if exchange.client else exchange.peer,
        server_name=exchange.host,
        server_port=exchange.port,
        matched_route=match.route,
        full_url=_full_url(exchange),
    )


def response_headers(exchange: Exchange, node: NodeIdentity) -> list[tuple[str, str]]:
    """What the client gets besides the handler's own headers: who served it, and how long it took."""
    headers = edge_headers(node)
    if exchange.cache_status is not None:
        headers.append(("x-cache", exchange.cache_status))
    if exchange.timings:
        headers.append(
            (
                "server-timing",
                ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, _, seconds in exchange.timings),
            )
        )
    trace = exchange.trace
    # W3C Trace Context Level 2, for callers that trace: which span served them. Not for
    # every response: measured, the header costs a busy node ~5-9 µs per request.
    if trace is not None and trace.parent_span_id:
        headers.append(("traceresponse", trace.traceparent(trace.span_id)))
    return headers


def _full_url(exchange: Exchange) -> str:
    default_port = 443 if exchange.scheme == "https" else 80
    authority = exchange.host if exchange.port == default_port else f"{exchange.host}:{exchange.port}"
    query = f"?{exchange.query}" if exchange.query else ""
    return f"{exchange.scheme}://{authority}{exchange.path}{query}"


class OriginFetcher(Protocol):
    async def fetch(self, exchange: Exchange, origin: str) -> WasmResponse: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    """Runs the stages in order and records each one's duration for ``server-timing``."""

    before_execute: tuple[Stage, ...]
    execute_wasm: ExecuteWasm
    origin: OriginFetcher
    cache: ResponseCache
    clock: Callable[[], float]
    metrics: EdgeMetrics

    def prepare(self, exchange: Exchange) -> None:
        """The stages before execution, in order: client, geo, route, cache."""
        timings = exchange.timings
        for stage in self.before_execute:  # _Stage inlined: this loop is the hot path
            started = time.perf_counter()
            try:
                stage.run(exchange)
            except BaseException:
                exchange.failed_stage = stage.name
                raise
            finally:
                timings.append((stage.name, started, time.perf_counter() - started))

    def execute_now(self, exchange: Exchange) -> bool:
        """Finish the request on this thread if nothing needs awaiting: a cache hit, or a wasm
        handler that runs inline. False leaves it to ``execute``."""
        if exchange.response is not None:
            return True
        match = exchange.match
        assert match is not None
        if match.origin is not None or not self.execute_wasm.runs_now(exchange):
            return False
        with _Stage(exchange, self.execute_wasm.name):
            self.execute_wasm.run_now(exchange)
        return True

    async def execute(self, exchange: Exchange) -> WasmResponse:
        """Execution after ``prepare``: the route's wasm handler or origin fetch, unless a
        cached answer is already there."""
        match = exchange.match
        assert match is not None
        if exchange.response is None:
            with _Stage(exchange, "origin" if match.origin is not None else self.execute_wasm.name):
                if match.origin is not None:
                    exchange.response = await self.origin.fetch(exchange, match.origin)
                    self._store(exchange)
                else:
                    await self.execute_wasm.run(exchange)
        assert exchange.response is not None
        return exchange.response

    def _store(self, exchange: Exchange) -> None:
        """CacheStore: keep a shareable origin response for the next client."""
        response = exchange.response
        if response is None or exchange.cache_status != "MISS" or exchange.method != "GET":
            return
        key = CacheKey.for_request(exchange.method, exchange.path, exchange.query)
        stored = self.cache.put(
            key, status=response.status, headers=response.headers, body=response.body, now=self.clock()
        )
        self.metrics.response_cache.labels("stored" if stored else "uncacheable").inc()


class _Stage:
    """Records a stage's start and duration for ``server-timing``, and its name if it fails.
    A class, not ``@contextmanager``: a generator-based one measured ~1.5 µs a use."""

    __slots__ = ("_exchange", "_name", "_started")

    def __init__(self, exchange: Exchange, name: str) -> None:
        self._exchange = exchange
        self._name = name
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._exchange.failed_stage = self._name
        self._exchange.timings.append((self._name, self._started, time.perf_counter() - self._started))


class _Handling:
    """Times a wasm run for the latency histogram; a guest's failure names its module."""

    __slots__ = ("_metrics", "_module", "_route", "_started")

    def __init__(self, metrics: EdgeMetrics, route: str, module: LoadedModule) -> None:
        self._metrics = metrics
        self._route = route
        self._module = module
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._metrics.observe_handler(self._route, "wasm", time.perf_counter() - self._started)
        if isinstance(exc, HandlerError):
            module = self._module
            raise HandlerFailedError(exc, module=module.name, digest=module.digest) from exc
