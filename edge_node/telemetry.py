"""The edge node's tracing: a server span per request continuing an incoming W3C
``traceparent``, and a child span per pipeline stage (client, geo, route, cache, wasm with
the module's name, digest, ABI, outcome and duration; the origin fetch as a CLIENT span).

Built on the lean tracer of ``tracing`` rather than the OpenTelemetry SDK: the SDK costs
~36 µs per span plus ~31 µs to encode it, more than a whole request here (see
docs/traces.md). Spans leave as OTLP/gRPC, batched, to the control plane (with the node's
bearer token) or to ``OTEL_EXPORTER_OTLP_ENDPOINT``. The resource names the service,
instance, region and PoP; the app name and version travel on each server span because a
node swaps apps while it runs.
"""

from __future__ import annotations

import logging
import os
from contextlib import AsyncExitStack
from typing import TypeVar

from edge_node.app import LoadedModule
from edge_node.errors import EdgeNodeError
from edge_node.geo_headers import NodeIdentity
from edge_node.pipeline import Exchange
from runtime.tls import ClientTlsFiles
from tracing.attributes import (
    CLIENT_ADDRESS,
    CLIENT_COUNTRY,
    ERROR_TYPE,
    HTTP_METHOD,
    HTTP_STATUS,
    URL_FULL,
    URL_PATH,
)
from tracing.exporter import OtlpBatchExporter
from tracing.lean import LeanTracer, RequestTrace
from tracing.sampling import ParentBasedRatioSampler
from tracing.settings import ExportSettings, edgecdn_version, export_settings, resource_attributes
from tracing.wire import (
    AttributeKey,
    SpanKind,
    SpanName,
    StatusCode,
    encode_resource,
    encode_scope,
    status_field,
)

logger = logging.getLogger(__name__)

SERVICE_NAME = "edge-node"
SCOPE = "edgecdn.edge_node"
_SERVER_ERROR = 500
_K = TypeVar("_K")
_V = TypeVar("_V")
_MAX_CACHED_ATTRIBUTES = 4096


STAGES = {name: SpanName(name, SpanKind.INTERNAL) for name in ("client", "geo", "route", "cache")}
K_ROUTE = AttributeKey("http.route")
K_CACHE = AttributeKey("edgecdn.cache")
K_APP = AttributeKey("edgecdn.app.name")
K_VERSION = AttributeKey("edgecdn.app.version")
K_MODULE = AttributeKey("edgecdn.wasm.module")
K_DIGEST = AttributeKey("edgecdn.wasm.digest")
K_ABI = AttributeKey("edgecdn.wasm.abi")
K_OUTCOME = AttributeKey("edgecdn.wasm.outcome")
K_WASM_MS = AttributeKey("edgecdn.wasm.duration_ms")
# An error answer's request id (x-request-id), so a client's report leads to its trace.
K_REQUEST_ID = AttributeKey("edgecdn.request_id")
OUTCOME_OK = K_OUTCOME.str("ok")


class EdgeTelemetry:
    """Starts request traces and turns a finished exchange into its spans.

    Everything that repeats across requests (span names, app, route and module
    attributes, status codes) is encoded once and cached; per request only ids, times,
    the path, the client and the wasm duration are written.
    """

    def __init__(self, *, tracer: LeanTracer, exporter: OtlpBatchExporter | None = None) -> None:
        self.tracer = tracer
        self._exporter = exporter
        self._server: dict[tuple[str, str, str], tuple[SpanName, bytes]] = {}
        self._modules: dict[tuple[str, str, str], tuple[SpanName, bytes]] = {}
        self._statuses: dict[int, bytes] = {}

    def spans_dropped(self) -> int:
        """Spans the exporter dropped since start (its queue was full, or an export failed):
        heartbeats carry the count, so statistics made from spans can say they are partial."""
        return 0 if self._exporter is None else self._exporter.dropped

    def begin(self, traceparent: str | None, tracestate: str | None) -> RequestTrace | None:
        """A trace for this request if it is sampled (continuing the caller's, if any)."""
        return self.tracer.begin(traceparent, tracestate)

    def record(
        self, trace: RequestTrace, exchange: Exchange, status: int, error: EdgeNodeError | None
    ) -> None:
        """Emit the stage spans and the server span of a finished request."""
        failed = exchange.failed_stage
        cache_used = exchange.cache_status is not None
        for name, started, seconds in exchange.timings:
            if name in STAGES and name != failed:
                if name != "cache" or cache_used:
                    trace.stage(STAGES[name], started, seconds)
                continue
            start_ns = trace.ns_at(started)
            end_ns = start_ns + int(seconds * 1e9)
            # A stage that failed the request is an error span only for a server error (5xx):
            # a 404 from the route stage is the client's mistake, recorded as error.type only.
            stage_error = error if name == failed else None
            if name == "wasm":
                self._wasm_span(trace, exchange, start_ns, end_ns, seconds=seconds, error=stage_error)
            elif name == "origin":
                self._origin_span(trace, exchange, start_ns, end_ns, stage_error)
            elif name != "cache" or exchange.cache_status is not None:
                if stage_error is None:
                    trace.emit(STAGES[name], start_ns, end_ns)
                else:
                    trace.emit(
                        STAGES[name], start_ns, end_ns, _error_attrs(stage_error), _status(stage_error)
                    )
        span_name, attributes = self._server_attrs(exchange)
        attributes += self._status_attr(status) + URL_PATH.str(exchange.path)
        if exchange.location.country:
            attributes += CLIENT_COUNTRY.str(exchange.location.country)
        if exchange.client is not None:
            attributes += CLIENT_ADDRESS.str(exchange.client.address)
        if exchange.cache_status is not None:
            attributes += K_CACHE.str(exchange.cache_status)
        if error is not None:
            attributes += ERROR_TYPE.str(error.kind) + K_REQUEST_ID.str(error.request_id)
        trace.finish(span_name, attributes, _status(error) if status >= _SERVER_ERROR else b"")

    def _status_attr(self, status: int) -> bytes:
        cached = self._statuses.get(status)
        if cached is None:
            cached = self._statuses[status] = HTTP_STATUS.int(status)
        return cached

    def _server_attrs(self, exchange: Exchange) -> tuple[SpanName, bytes]:
        app = exchange.app
        route = exchange.match.route if exchange.match is not None else ""
        key = (exchange.method, route, f"{app.name}@{app.version}" if app is not None else "")
        cached = self._server.get(key)
        if cached is None:
            attributes = HTTP_METHOD.str(exchange.method)
            if route:
                attributes += K_ROUTE.str(route)
            if app is not None:
                attributes += K_APP.str(app.name) + K_VERSION.str(app.version)
            name = SpanName(f"{exchange.method} {route}" if route else exchange.method, SpanKind.SERVER)
            cached = _bounded(self._server)[key] = (name, attributes)
        return cached

    def _wasm_span(
        self,
        trace: RequestTrace,
        exchange: Exchange,
        start_ns: int,
        end_ns: int,
        *,
        seconds: float,
        error: EdgeNodeError | None,
    ) -> None:
        module = None
        if exchange.app is not None and exchange.match is not None and exchange.match.module is not None:
            module = exchange.app.modules.get(exchange.match.module)
        name, attributes = self._module(module)
        attributes += (OUTCOME_OK if error is None else K_OUTCOME.str(error.kind)) + K_WASM_MS.double(
            seconds * 1000
        )
        trace.emit(name, start_ns, end_ns, attributes, _status(error))

    def _module(self, module: LoadedModule | None) -> tuple[SpanName, bytes]:
        if module is None:
            return SpanName("wasm", SpanKind.INTERNAL), b""
        key = (module.name, module.digest, module.abi)
        cached = self._modules.get(key)
        if cached is None:
            attributes = K_MODULE.str(module.name) + K_DIGEST.str(module.digest) + K_ABI.str(module.abi)
            name = SpanName(f"wasm {module.name}", SpanKind.INTERNAL)
            cached = _bounded(self._modules)[key] = (name, attributes)
        return cached

    def _origin_span(
        self, trace: RequestTrace, exchange: Exchange, start_ns: int, end_ns: int, error: EdgeNodeError | None
    ) -> None:
        match = exchange.match
        origin = match.origin if match is not None and match.origin is not None else ""
        attributes = URL_FULL.str(origin.rstrip("/") + exchange.path) + HTTP_METHOD.str(exchange.method)
        if exchange.response is not None and error is None:
            attributes += self._status_attr(exchange.response.status)
        if exchange.cache_status is not None:
            attributes += K_CACHE.str(exchange.cache_status)
        trace.emit(
            SpanName(f"{exchange.method} origin", SpanKind.CLIENT),
            start_ns,
            end_ns,
            attributes + _error_attrs(error),
            _status(error),
            span_id=exchange.origin_span_id or None,
        )


def _bounded(cache: dict[_K, _V]) -> dict[_K, _V]:
    """``cache``, emptied first when full (keys are routes and modules: few, but unbounded
    across many app versions)."""
    if len(cache) >= _MAX_CACHED_ATTRIBUTES:
        cache.clear()
    return cache


def _status(error: EdgeNodeError | None) -> bytes:
    if error is None or error.status < _SERVER_ERROR:
        return b""
    return status_field(StatusCode.ERROR, error.message)


def _error_attrs(error: EdgeNodeError | None) -> bytes:
    return b"" if error is None else ERROR_TYPE.str(error.kind)


def resource(node: NodeIdentity) -> dict[str, str]:
    return resource_attributes(
        os.environ,
        {
            "service.name": SERVICE_NAME,
            "service.namespace": "edgecdn",
            "service.version": edgecdn_version(),
            "service.instance.id": node.node_id,
            "edgecdn.region": node.region,
            "edgecdn.pop": node.pop,
        },
    )


async def start_telemetry(
    stack: AsyncExitStack,
    node: NodeIdentity,
    *,
    control_plane: str | None,
    token: str,
    sample_ratio: float,
    control_plane_tls: ClientTlsFiles | None = None,
    settings: ExportSettings | None = None,
) -> EdgeTelemetry | None:
    """Tracing for this process until ``stack`` closes; None when tracing is off.

    What ``tracing.lean.start_lean_tracer`` does, but keeping the exporter, whose count of
    dropped spans the node reports with its heartbeats."""
    settings = settings or export_settings(
        os.environ, control_plane=control_plane, token=token or None, control_plane_tls=control_plane_tls
    )
    if settings is None:
        logger.info("tracing off: no --control-plane and no OTEL_EXPORTER_OTLP_ENDPOINT")
        return None
    exporter = await stack.enter_async_context(
        OtlpBatchExporter(
            settings,
            resource=encode_resource(resource(node)),
            scope=encode_scope(SCOPE, edgecdn_version()),
        )
    )
    logger.info("tracing to %s, sampling %g of new traces", settings.target, sample_ratio)
    tracer = LeanTracer(sampler=ParentBasedRatioSampler(ratio=sample_ratio), sink=exporter)
    return EdgeTelemetry(tracer=tracer, exporter=exporter)
