"""The collector: every export request (from the network or from the control plane's own
SDK) goes through ``ingest`` into the store, the statistics and the forwarder.

Runs on the event loop only; the SDK's exporter thread hands its requests over with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from control_plane.traces.forward import OtlpForwarder
from control_plane.traces.records import Decoded, decode_resource_spans
from control_plane.traces.stats import RollingStats
from control_plane.traces.store import TraceStore


class Collector:
    """Store + statistics + optional forwarding, fed with OTLP export requests."""

    def __init__(
        self,
        *,
        store: TraceStore,
        stats: RollingStats,
        forwarder: OtlpForwarder | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.stats = stats
        self.forwarder = forwarder
        self.clock = clock
        self.received_spans = 0
        self.rejected_spans = 0

    def ingest(self, request: ExportTraceServiceRequest) -> Decoded:
        decoded = decode_resource_spans(request.resource_spans)
        now = self.clock()
        self.store.add(decoded.spans, now)
        self.stats.add(decoded.spans, now)
        self.received_spans += len(decoded.spans)
        self.rejected_spans += decoded.rejected
        if self.forwarder is not None:
            self.forwarder.submit(request.SerializeToString())
        return decoded


class LocalSpanExporter(SpanExporter):
    """The control plane's own spans, straight into its collector (no network hop, no token)."""

    def __init__(self, collector: Collector, loop: asyncio.AbstractEventLoop) -> None:
        self._collector = collector
        self._loop = loop

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        request = encode_spans(spans)
        if self._loop.is_closed():
            return SpanExportResult.FAILURE
        try:
            self._loop.call_soon_threadsafe(self._collector.ingest, request)
        except RuntimeError:  # the loop closed meanwhile: shutting down
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""
