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
from dataclasses import dataclass

from edge_node.app import LoadedApp, LoadedModule
from edge_node.cache_stage import CacheLookup, CacheThrough, FreshHits
from edge_node.errors import HandlerFailedError, HeadersTooLargeError, NoAppError, RouteNotFoundError
from edge_node.exchange import Exchange, OriginFetcher, Stage
from edge_node.geo_headers import NodeIdentity, edge_headers, geo_headers
from edge_node.metrics import EdgeMetrics
from geo.forwarding import IPNetwork, is_reserved_header, resolve_client
from geo.lookup import UNKNOWN, Location
from wasm_host.errors import HandlerError
from wasm_host.executor import InlineCut, WasmExecutor
from wasm_host.outbound import CURRENT_FETCHER, OutboundFetcher
from wasm_host.values import WasmRequest, WasmResponse

# Re-exported: the adapter, the origin fetcher and tests name them from here.
__all__ = ["CacheLookup", "CacheThrough", "Exchange", "ExecuteWasm", "OriginFetcher", "Pipeline", "Stage"]


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
class ExecuteWasm:
    """Run the route's module with the request (a fresh sandboxed instance per request)."""

    executor: WasmExecutor
    metrics: EdgeMetrics
    # The node's outbound HTTP for one request (edge_node.outbound): set for the run of a
    # handler that calls out, which the executor always runs on its pool.
    fetcher_for: Callable[[Exchange], OutboundFetcher] | None = None
    name: str = "wasm"

    def runs_now(self, exchange: Exchange) -> bool:
        """True when this request's handler runs inline (``run_now``), not on the thread pool."""
        return self.executor.runs_inline(self._module(exchange).handler)

    def run_now(self, exchange: Exchange) -> bool:
        """Run the handler on this thread for at most the executor's slice; False when the
        slice ran out: then ``run`` finishes the request on the pool."""
        module = self._module(exchange)
        handling = _Handling(self.metrics, exchange.route_label, module)
        with handling:
            outcome = self.executor.try_inline(module.handler, _wasm_request(exchange))
            if isinstance(outcome, InlineCut):
                handling.observe = False  # ``run`` observes the whole run, this part included
                exchange.wasm_started = handling.started
                exchange.wasm_spent_s = outcome.spent_s
                return False
            exchange.response = outcome
        return True

    async def run(self, exchange: Exchange) -> None:
        module = self._module(exchange)
        handler = module.handler
        token = None
        if handler.calls_out and self.fetcher_for is not None:
            token = CURRENT_FETCHER.set(self.fetcher_for(exchange))
        try:
            with _Handling(self.metrics, exchange.route_label, module, started=exchange.wasm_started):
                exchange.response = await self.executor.handle(
                    handler, _wasm_request(exchange), spent_s=exchange.wasm_spent_s
                )
        finally:
            if token is not None:
                CURRENT_FETCHER.reset(token)

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Pipeline:
    """Runs the stages in order and records each one's duration for ``server-timing``;
    ``through`` takes execution through the HTTP cache."""

    before_execute: tuple[Stage, ...]
    execute_wasm: ExecuteWasm
    through: CacheThrough

    def fresh_hits(self) -> FreshHits | None:
        """The cache's fast path over this pipeline's own stages; None unless they are the
        standard four (client, geo, route, cache), the ones a replayed hit stands for."""
        if len(self.before_execute) != 4:  # the four stages below
            return None
        client, geo, route, cache = self.before_execute
        if not (
            isinstance(client, ResolveClient)
            and isinstance(geo, ResolveGeo)
            and isinstance(route, Route)
            and isinstance(cache, CacheLookup)
        ):
            return None
        return FreshHits(
            cache=cache.cache,
            metrics=cache.metrics,
            locate=geo.locate,
            current_app=route.current_app,
            max_header_bytes=client.max_header_bytes,
        )

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
            self.through.refresh_if_asked(exchange)
            return True
        match = exchange.match
        assert match is not None
        if match.origin is not None or not self.execute_wasm.runs_now(exchange):
            return False
        stage = _Stage(exchange, self.execute_wasm.name)
        with stage:
            if not self.execute_wasm.run_now(exchange):
                # Stopped at the slice: ``execute`` times the stage, from this start.
                stage.record = False
                return False
        self.through.settle(exchange)
        return True

    async def execute(self, exchange: Exchange) -> WasmResponse:
        """Execution after ``prepare``: the route's wasm handler or origin fetch, unless a
        cached answer is already there."""
        match = exchange.match
        assert match is not None
        if exchange.response is None:
            stage = _Stage(exchange, "origin" if match.origin is not None else self.execute_wasm.name)
            stage.started = exchange.wasm_started
            with stage:
                if match.origin is not None:
                    await self.through.fetch_origin(exchange, match.origin)
                else:
                    await self.execute_wasm.run(exchange)
                    self.through.settle(exchange)
        else:
            self.through.refresh_if_asked(exchange)
        assert exchange.response is not None
        return exchange.response


class _Stage:
    """Records a stage's start and duration for ``server-timing``, and its name if it fails.
    A class, not ``@contextmanager``: a generator-based one measured ~1.5 µs a use.
    ``started`` set before entering keeps that start (a stage resumed off the loop);
    ``record = False`` inside leaves the recording to the stage that resumes it."""

    __slots__ = ("_exchange", "_name", "record", "started")

    def __init__(self, exchange: Exchange, name: str) -> None:
        self._exchange = exchange
        self._name = name
        self.started = 0.0
        self.record = True

    def __enter__(self) -> None:
        if not self.started:
            self.started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._exchange.failed_stage = self._name
        elif not self.record:
            return
        self._exchange.timings.append((self._name, self.started, time.perf_counter() - self.started))


class _Handling:
    """Times a wasm run for the latency histogram; a guest's failure names its module.
    ``started`` (non-zero) is the start of a run stopped on the loop that this one finishes;
    ``observe = False`` leaves the observation to that run."""

    __slots__ = ("_metrics", "_module", "_route", "observe", "started")

    def __init__(self, metrics: EdgeMetrics, route: str, module: LoadedModule, started: float = 0.0) -> None:
        self._metrics = metrics
        self._route = route
        self._module = module
        self.started = started
        self.observe = True

    def __enter__(self) -> None:
        if not self.started:
            self.started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self.observe:
            self._metrics.observe_handler(self._route, "wasm", time.perf_counter() - self.started)
        if isinstance(exc, HandlerError):
            module = self._module
            raise HandlerFailedError(exc, module=module.name, digest=module.digest) from exc
