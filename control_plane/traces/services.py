"""gRPC adapters: the standard OTLP ``TraceService/Export`` and ``TraceQueryService``.

Undecodable payloads never reach ``Export``: the strict-decoding interceptor answers
INVALID_ARGUMENT naming the message type. Spans with malformed ids are dropped and
reported through OTLP partial success (``rejected_spans``, ``error_message``); when every
span of a request is malformed the call fails with INVALID_ARGUMENT.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as OtlpStatus

from control_plane.traces.collector import Collector
from control_plane.traces.figures import NodeFigures
from control_plane.traces.records import SpanRecord, render_value
from control_plane.traces.report import stats_rows
from control_plane.traces.store import NS, TraceEntry, TraceFilter
from protos.edgecdn.v1 import traces_pb2, traces_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
DEFAULT_STATS_WINDOW_S = 60.0
_STATUS = {
    OtlpStatus.STATUS_CODE_UNSET: traces_pb2.SPAN_STATUS_UNSET,
    OtlpStatus.STATUS_CODE_OK: traces_pb2.SPAN_STATUS_OK,
    OtlpStatus.STATUS_CODE_ERROR: traces_pb2.SPAN_STATUS_ERROR,
}
_KINDS = {
    OtlpSpan.SPAN_KIND_SERVER: "SERVER",
    OtlpSpan.SPAN_KIND_CLIENT: "CLIENT",
    OtlpSpan.SPAN_KIND_INTERNAL: "INTERNAL",
    OtlpSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    OtlpSpan.SPAN_KIND_CONSUMER: "CONSUMER",
}


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """OTLP/gRPC trace receiver."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    async def Export(  # noqa: N802 - gRPC method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Context
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        decoded = self._collector.ingest(request)
        if decoded.rejected and not decoded.spans:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"all {decoded.rejected} spans rejected: {decoded.first_error}",
            )
        response = trace_service_pb2.ExportTraceServiceResponse()
        if decoded.rejected:
            response.partial_success.rejected_spans = decoded.rejected
            response.partial_success.error_message = decoded.first_error
        return response


def _timestamp(ns: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


def _status(entry_error: bool) -> traces_pb2.SpanStatus.ValueType:
    return traces_pb2.SPAN_STATUS_ERROR if entry_error else traces_pb2.SPAN_STATUS_OK


def summary(entry: TraceEntry) -> traces_pb2.TraceSummary:
    root = entry.root
    return traces_pb2.TraceSummary(
        trace_id=entry.trace_id.hex(),
        root_service=root.service,
        root_name=root.message.name,
        start_time=_timestamp(entry.start_ns),
        duration_ms=(entry.end_ns - entry.start_ns) / 1e6,
        status=_status(entry.error),
        span_count=len(entry.spans),
        region=entry.region,
        app_version=entry.app_version,
    )


def span_message(span: SpanRecord) -> traces_pb2.Span:
    message = span.message
    attributes = dict(span.resource.attributes)
    attributes.update((kv.key, render_value(kv.value)) for kv in message.attributes)
    status = _STATUS.get(message.status.code, traces_pb2.SPAN_STATUS_UNSET)
    if span.error:
        status = traces_pb2.SPAN_STATUS_ERROR
    return traces_pb2.Span(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        service=span.service,
        name=message.name,
        start_time=_timestamp(span.start_ns),
        duration_ms=span.duration_ns / 1e6,
        status=status,
        status_message=message.status.message,
        attributes=attributes,
        kind=_KINDS.get(message.kind, "UNSPECIFIED"),
    )


def _seconds(duration: Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


class TraceQueryServicer(traces_pb2_grpc.TraceQueryServiceServicer):
    """Reads the collector's store and statistics, and the nodes' exact figures (``figures``,
    the fleet's; without them statistics are counted from spans alone)."""

    def __init__(
        self,
        collector: Collector,
        *,
        figures: NodeFigures | None = None,
        default_window_s: float = DEFAULT_STATS_WINDOW_S,
    ) -> None:
        self._collector = collector
        self._figures = figures
        self._default_window_s = min(default_window_s, collector.stats.max_window_s)

    async def ListTraces(  # noqa: N802 - gRPC method name
        self, request: traces_pb2.ListTracesRequest, context: Context
    ) -> traces_pb2.ListTracesResponse:
        since_ns = None
        if request.HasField("since"):
            since = _seconds(request.since)
            if since <= 0:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "since: must be positive")
            since_ns = time.time_ns() - int(since * NS)
        query = TraceFilter(
            region=request.region,
            service=request.service,
            app_version=request.app_version,
            errors_only=request.errors_only,
            since_ns=since_ns,
            limit=min(request.limit or DEFAULT_LIMIT, MAX_LIMIT),
        )
        entries = self._collector.store.find(query)
        return traces_pb2.ListTracesResponse(traces=[summary(e) for e in entries])

    async def GetTrace(  # noqa: N802 - gRPC method name
        self, request: traces_pb2.GetTraceRequest, context: Context
    ) -> traces_pb2.Trace:
        try:
            trace_id = bytes.fromhex(request.trace_id)
        except ValueError:
            trace_id = b""
        if len(trace_id) != 16:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"trace_id: {request.trace_id!r} is not 32 hex digits"
            )
        entry = self._collector.store.get(trace_id)
        if entry is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"trace {request.trace_id} not found (never collected, or evicted from the store)",
            )
        spans = sorted(entry.spans, key=lambda s: (s.start_ns, -s.end_ns))
        return traces_pb2.Trace(trace_id=request.trace_id, spans=[span_message(s) for s in spans])

    async def GetStats(  # noqa: N802 - gRPC method name
        self, request: traces_pb2.GetStatsRequest, context: Context
    ) -> traces_pb2.GetStatsResponse:
        window_s = _seconds(request.window) if request.HasField("window") else self._default_window_s
        stats = self._collector.stats
        if not 0 < window_s <= stats.max_window_s:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"window: must be within (0, {stats.max_window_s:g}] seconds (--stats-max-window)",
            )
        now_ns = time.time_ns()
        rows = stats.query(
            window_s=window_s,
            now_ns=now_ns,
            region=request.region,
            app_name=request.app_name,
            by_route=request.by_route,
        )
        dropped: dict[str, int] = {}
        if self._figures is not None:
            figures = self._figures
            dropped = figures.spans_dropped(window_s=window_s, now_ns=now_ns, region=request.region)
            rows = stats_rows(
                span_rows=rows,
                node_rows=figures.rows(
                    window_s=window_s, now_ns=now_ns, region=request.region, app_name=request.app_name
                ),
                spans_dropped=dropped,
                by_route=request.by_route,
            )
        window = Duration()
        window.FromNanoseconds(int(window_s * NS))
        return traces_pb2.GetStatsResponse(
            window=window,
            spans_dropped=sum(dropped.values()),
            rows=[
                traces_pb2.StatsRow(
                    region=r.key.region,
                    app_name=r.key.app_name,
                    app_version=r.key.app_version,
                    route=r.key.route,
                    requests=r.requests,
                    errors=r.errors,
                    error_rate=r.error_rate,
                    requests_per_second=r.requests_per_second,
                    p50_ms=r.p50_ms,
                    p95_ms=r.p95_ms,
                    p99_ms=r.p99_ms,
                    partial=r.partial,
                    partial_reason=r.partial_reason,
                    source=r.source,
                    cache=dict(r.cache),
                    hit_ratio=r.hit_ratio,
                )
                for r in rows
            ],
        )
