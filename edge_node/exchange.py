"""The one mutable value a request accumulates on its way through the edge pipeline,
and the shapes of the pipeline's stages and origin fetcher (``edge_node.pipeline``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from edge_node.app import LoadedApp, RouteMatch
from edge_node.cache_flow import CacheState
from geo.forwarding import ClientIdentity
from geo.lookup import UNKNOWN, Location
from tracing.lean import RequestTrace
from wasm_host.values import WasmResponse


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
    cache: CacheState | None = None  # the cache's view of this request (edge_node.cache_flow)
    # (stage name, perf_counter at its start, seconds it took); the failing stage too.
    timings: list[tuple[str, float, float]] = field(default_factory=list)
    failed_stage: str | None = None
    trace: RequestTrace | None = None  # set when this request is sampled
    started: float = 0.0  # perf_counter when the request reached the node: its latency's start
    origin_span_id: bytes = b""  # the origin fetch's span, named in its traceparent
    # Set when the handler's run on the event loop was stopped at the executor's slice
    # (wasm_host.executor): when that run started, and the wall time it took, which the
    # run on the pool that finishes the request is charged (the rest of the deadline).
    wasm_started: float = 0.0
    wasm_spent_s: float = 0.0

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


class OriginFetcher(Protocol):
    async def fetch(self, exchange: Exchange, origin: str) -> WasmResponse: ...
