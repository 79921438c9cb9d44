"""The router's tracing: a SERVER span per request and a CLIENT span per hop to an edge node.

The server span continues a caller's W3C ``traceparent`` and names the client's country,
the chosen region and node, the routing reason and the emulated WAN delay; each attempt
to reach a node is a CLIENT span whose id travels to the node in ``traceparent``, so the
edge node's server span is its child and one trace spans router and node. Built on the
lean tracer of ``tracing`` (the OpenTelemetry SDK costs more per span than a routed
request); spans leave as OTLP/gRPC, batched, to the control plane or to
``OTEL_EXPORTER_OTLP_ENDPOINT``.
"""

from __future__ import annotations

import os
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from geo.lookup import Location
from router.policy import Candidate, NodeView
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
from tracing.lean import LeanTracer, RequestTrace, start_lean_tracer
from tracing.settings import ExportSettings, edgecdn_version, resource_attributes
from tracing.wire import (
    AttributeKey,
    SpanKind,
    SpanName,
    StatusCode,
    status_field,
)

if TYPE_CHECKING:
    from router.errors import RouterError

SERVICE_NAME = "edge-router"
SCOPE = "edgecdn.router"
K_REGION = AttributeKey("edgecdn.route.region")
K_NODE = AttributeKey("edgecdn.route.node")
K_REASON = AttributeKey("edgecdn.route.reason")
K_RTT = AttributeKey("edgecdn.route.rtt_ms")
K_WAN = AttributeKey("edgecdn.wan.delay_ms")
# The router's own error answer's request id (x-request-id), so a client's report leads here.
K_REQUEST_ID = AttributeKey("edgecdn.request_id")
_SERVER_ERROR = 500


class RouteSpan:
    """The server span of one sampled request, and what the proxy learns while serving it."""

    __slots__ = ("client", "country", "error", "request_id", "trace", "wan_ms")

    def __init__(self, trace: RequestTrace, client: str, country: str | None) -> None:
        self.trace = trace
        self.client = client
        self.country = country
        self.wan_ms = 0.0
        # The router's own error answer, if it made one (router.failures): the span has
        # what the client was not told.
        self.error: RouterError | None = None
        self.request_id = ""


@dataclass(slots=True)
class Hop:
    """One attempt to reach an edge node: its CLIENT span's id and start."""

    span_id: bytes
    started: float


class RouterTelemetry:
    """Starts request traces and records their spans."""

    def __init__(self, *, tracer: LeanTracer) -> None:
        self.tracer = tracer
        self._names: dict[tuple[str, SpanKind], SpanName] = {}

    def _name(self, name: str, kind: SpanKind) -> SpanName:
        key = (name, kind)
        span_name = self._names.get(key)
        if span_name is None:
            span_name = self._names[key] = SpanName(name, kind)
        return span_name

    def begin(
        self, traceparent: str | None, tracestate: str | None, client: str, location: Location
    ) -> RouteSpan | None:
        trace = self.tracer.begin(traceparent, tracestate)
        return None if trace is None else RouteSpan(trace, client, location.country)

    def hop(self, span: RouteSpan) -> Hop:
        """Start a hop; the outgoing request carries ``span.trace.traceparent(hop.span_id)``."""
        return Hop(span_id=span.trace.new_span_id(), started=time.perf_counter())

    def hop_done(
        self, span: RouteSpan, hop: Hop, node: NodeView, *, status: int | None, error: str | None = None
    ) -> None:
        start_ns = span.trace.ns_at(hop.started)
        end_ns = span.trace.ns_at(time.perf_counter())
        attributes = K_NODE.str(node.node_id) + K_REGION.str(node.region) + URL_FULL.str(node.url)
        status_bytes = b""
        if status is not None:
            attributes += HTTP_STATUS.int(status)
        if error is not None:
            attributes += ERROR_TYPE.str(error)
            status_bytes = status_field(StatusCode.ERROR, error)
        elif status is not None and status >= _SERVER_ERROR:
            status_bytes = status_field(StatusCode.ERROR, f"edge node answered {status}")
        span.trace.emit(
            self._name("edge hop", SpanKind.CLIENT),
            start_ns,
            end_ns,
            attributes,
            status_bytes,
            span_id=hop.span_id,
        )

    def finish(self, span: RouteSpan, method: str, path: str, chosen: Candidate | None, status: int) -> None:
        attributes = (
            HTTP_METHOD.str(method)
            + URL_PATH.str(path)
            + HTTP_STATUS.int(status)
            + CLIENT_ADDRESS.str(span.client)
        )
        if span.country:
            attributes += CLIENT_COUNTRY.str(span.country)
        if chosen is not None:
            attributes += K_REGION.str(chosen.node.region) + K_NODE.str(chosen.node.node_id)
            attributes += K_REASON.str(chosen.reason)
            if chosen.rtt_ms is not None:
                attributes += K_RTT.double(round(chosen.rtt_ms, 3))
        attributes += K_WAN.double(round(span.wan_ms, 3))
        error = span.error
        if error is not None:
            attributes += ERROR_TYPE.str(error.kind) + K_REQUEST_ID.str(span.request_id)
        failed = status >= _SERVER_ERROR
        # The detail (node, address, OS error) of the router's own failure; else the status.
        detail = error.message if error is not None else f"answered {status}"
        status_bytes = status_field(StatusCode.ERROR, detail) if failed else b""
        span.trace.finish(self._name(f"{method} route", SpanKind.SERVER), attributes, status_bytes)


def resource(router_id: str) -> dict[str, str]:
    return resource_attributes(
        os.environ,
        {
            "service.name": SERVICE_NAME,
            "service.namespace": "edgecdn",
            "service.version": edgecdn_version(),
            "service.instance.id": router_id,
            "edgecdn.region": "global",
        },
    )


async def start_telemetry(
    stack: AsyncExitStack,
    router_id: str,
    *,
    control_plane: str | None,
    token: str,
    sample_ratio: float,
    control_plane_tls: ClientTlsFiles | None = None,
    settings: ExportSettings | None = None,
) -> RouterTelemetry | None:
    """Tracing for this process until ``stack`` closes; None when tracing is off."""
    tracer = await start_lean_tracer(
        stack,
        resource=resource(router_id),
        scope=SCOPE,
        control_plane=control_plane,
        token=token,
        sample_ratio=sample_ratio,
        control_plane_tls=control_plane_tls,
        settings=settings,
    )
    return None if tracer is None else RouterTelemetry(tracer=tracer)
