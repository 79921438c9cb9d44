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
from collections.abc import Mapping
from contextlib import AsyncExitStack
from importlib import metadata

from edge_node.app import LoadedModule
from edge_node.errors import EdgeNodeError
from edge_node.geo_headers import NodeIdentity
from edge_node.pipeline import Exchange
from tracing.exporter import OtlpBatchExporter
from tracing.lean import LeanTracer, RequestTrace
from tracing.sampling import ParentBasedRatioSampler
from tracing.settings import ExportSettings, export_settings, resource_attributes
from tracing.wire import SpanKind, StatusCode, encode_resource, encode_scope, span_attribute, span_attributes

logger = logging.getLogger(__name__)

SERVICE_NAME = "edge-node"
SCOPE = "edgecdn.edge_node"
_SERVER_ERROR = 500
_MAX_CACHED_ATTRIBUTES = 4096


def _version() -> str:
    try:
        return metadata.version("edgecdn")
    except metadata.PackageNotFoundError:
        return "0"


class EdgeTelemetry:
    """Starts request traces and turns a finished exchange into its spans."""

    def __init__(self, *, tracer: LeanTracer, exporter: OtlpBatchExporter | None = None) -> None:
        self.tracer = tracer
        self.exporter = exporter
        self._module_attrs: dict[tuple[str, str, str], bytes] = {}
        self._app_attrs: dict[tuple[str, str, str], bytes] = {}

    def begin(self, headers: Mapping[str, str]) -> RequestTrace | None:
        return self.tracer.begin(headers.get("traceparent"), headers.get("tracestate"))

    def record(
        self, trace: RequestTrace, exchange: Exchange, status: int, error: EdgeNodeError | None
    ) -> None:
        """Emit the stage spans and the server span of a finished request."""
        failed = exchange.failed_stage
        for name, started, seconds in exchange.timings:
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
                trace.emit(
                    name,
                    kind=SpanKind.INTERNAL,
                    start_ns=start_ns,
                    end_ns=end_ns,
                    attributes=_error_attrs(stage_error),
                    status=_status(stage_error),
                    status_message=_message(stage_error),
                )
        route = exchange.match.route if exchange.match is not None else ""
        attributes = self._request_attrs(exchange, route) + span_attributes(
            {"http.response.status_code": status, "url.path": exchange.path}
        )
        if exchange.location.country:
            attributes += span_attribute("edgecdn.client.country", exchange.location.country)
        if exchange.client is not None:
            attributes += span_attribute("client.address", exchange.client.address)
        if exchange.cache_status is not None:
            attributes += span_attribute("edgecdn.cache", exchange.cache_status)
        server_error = status >= _SERVER_ERROR
        if error is not None:
            attributes += span_attribute("error.type", error.kind)
        trace.finish(
            f"{exchange.method} {route}" if route else exchange.method,
            attributes=attributes,
            status=StatusCode.ERROR if server_error else StatusCode.UNSET,
            status_message=error.message if server_error and error is not None else "",
        )

    def _request_attrs(self, exchange: Exchange, route: str) -> bytes:
        app = exchange.app
        key = (exchange.method, route, f"{app.name}@{app.version}" if app is not None else "")
        cached = self._app_attrs.get(key)
        if cached is None:
            values: dict[str, str | int] = {"http.request.method": exchange.method}
            if route:
                values["http.route"] = route
            if app is not None:
                values["edgecdn.app.name"] = app.name
                values["edgecdn.app.version"] = app.version
            cached = span_attributes(values)
            if len(self._app_attrs) >= _MAX_CACHED_ATTRIBUTES:
                self._app_attrs.clear()
            self._app_attrs[key] = cached
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
        attributes = self._module_attributes(module) + span_attributes(
            {
                "edgecdn.wasm.outcome": error.kind if error is not None else "ok",
                "edgecdn.wasm.duration_ms": seconds * 1000,
            }
        )
        trace.emit(
            f"wasm {module.name}" if module is not None else "wasm",
            kind=SpanKind.INTERNAL,
            start_ns=start_ns,
            end_ns=end_ns,
            attributes=attributes,
            status=_status(error),
            status_message=_message(error),
        )

    def _module_attributes(self, module: LoadedModule | None) -> bytes:
        if module is None:
            return b""
        key = (module.name, module.digest, module.abi)
        cached = self._module_attrs.get(key)
        if cached is None:
            cached = span_attributes(
                {
                    "edgecdn.wasm.module": module.name,
                    "edgecdn.wasm.digest": module.digest,
                    "edgecdn.wasm.abi": module.abi,
                }
            )
            if len(self._module_attrs) >= _MAX_CACHED_ATTRIBUTES:
                self._module_attrs.clear()
            self._module_attrs[key] = cached
        return cached

    def _origin_span(
        self, trace: RequestTrace, exchange: Exchange, start_ns: int, end_ns: int, error: EdgeNodeError | None
    ) -> None:
        match = exchange.match
        origin = match.origin if match is not None and match.origin is not None else ""
        values: dict[str, str | int] = {
            "url.full": origin.rstrip("/") + exchange.path,
            "http.request.method": exchange.method,
        }
        if exchange.response is not None and error is None:
            values["http.response.status_code"] = exchange.response.status
        if exchange.cache_status is not None:
            values["edgecdn.cache"] = exchange.cache_status
        trace.emit(
            f"{exchange.method} origin",
            kind=SpanKind.CLIENT,
            start_ns=start_ns,
            end_ns=end_ns,
            attributes=span_attributes(values) + _error_attrs(error),
            status=_status(error),
            status_message=_message(error),
            span_id=exchange.origin_span_id or None,
        )


def _status(error: EdgeNodeError | None) -> StatusCode:
    return StatusCode.ERROR if error is not None and error.status >= _SERVER_ERROR else StatusCode.UNSET


def _message(error: EdgeNodeError | None) -> str:
    return error.message if error is not None and error.status >= _SERVER_ERROR else ""


def _error_attrs(error: EdgeNodeError | None) -> bytes:
    return b"" if error is None else span_attribute("error.type", error.kind)


def resource(node: NodeIdentity) -> dict[str, str]:
    return resource_attributes(
        os.environ,
        {
            "service.name": SERVICE_NAME,
            "service.namespace": "edgecdn",
            "service.version": _version(),
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
    settings: ExportSettings | None = None,
) -> EdgeTelemetry | None:
    """Tracing for this node, exporting until ``stack`` closes; None when there is nowhere
    to send spans (no control plane, no OTEL endpoint) or OTEL_SDK_DISABLED is set."""
    settings = settings or export_settings(os.environ, control_plane=control_plane, token=token or None)
    if settings is None:
        logger.info("tracing off: no --control-plane and no OTEL_EXPORTER_OTLP_ENDPOINT")
        return None
    exporter = await stack.enter_async_context(
        OtlpBatchExporter(
            settings, resource=encode_resource(resource(node)), scope=encode_scope(SCOPE, _version())
        )
    )
    logger.info("tracing to %s, sampling %g of new traces", settings.target, sample_ratio)
    tracer = LeanTracer(sampler=ParentBasedRatioSampler(ratio=sample_ratio), sink=exporter)
    return EdgeTelemetry(tracer=tracer, exporter=exporter)
