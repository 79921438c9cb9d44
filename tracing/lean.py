"""A lean tracer for hot paths: one ``RequestTrace`` per sampled request, spans encoded
straight to OTLP bytes (``tracing.wire``) and handed to a sink (the batch exporter).

Unsampled requests cost a header lookup and one comparison; nothing is allocated for
them. Span times are wall-clock nanoseconds anchored once per request, offsets measured
with ``perf_counter`` (monotonic, so stage spans nest exactly inside their parent).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Protocol

from runtime.tls import ClientTlsFiles
from tracing.context import TraceParent, format_traceparent, new_span_id, new_trace_id, parse_traceparent
from tracing.exporter import OtlpBatchExporter
from tracing.sampling import ParentBasedRatioSampler
from tracing.settings import ExportSettings, edgecdn_version, export_settings
from tracing.wire import (
    SpanName,
    encode_plain_child,
    encode_resource,
    encode_scope,
    encode_span_parts,
    trace_state_field,
)

logger = logging.getLogger(__name__)

_ID_MASK = (1 << 64) - 1


class SpanSink(Protocol):
    def add(self, span: bytes) -> None: ...


class RequestTrace:
    """The server span of one sampled request, and the ids and clock its children use."""

    __slots__ = (
        "_anchor_ns",
        "_anchor_perf",
        "_next_id",
        "_sink",
        "parent_span_id",
        "span_id",
        "trace_id",
        "tracestate",
    )

    def __init__(
        self, *, trace_id: bytes, parent: TraceParent | None, rng: random.Random, sink: SpanSink
    ) -> None:
        self.trace_id = trace_id
        self.parent_span_id = parent.span_id if parent is not None else b""
        self.tracestate = parent.tracestate if parent is not None else ""
        self._sink = sink
        self.span_id = new_span_id(rng)
        # Children count up from the server span's id: unique within the trace (all W3C
        # asks of a span id) at a fraction of the cost of drawing each one at random.
        self._next_id = int.from_bytes(self.span_id, "big")
        self._anchor_ns = time.time_ns()
        self._anchor_perf = time.perf_counter()

    @property
    def start_ns(self) -> int:
        return self._anchor_ns

    def ns_at(self, perf: float) -> int:
        """Wall-clock nanoseconds of a ``time.perf_counter()`` reading taken during the request."""
        return self._anchor_ns + int((perf - self._anchor_perf) * 1e9)

    def new_span_id(self) -> bytes:
        self._next_id = (self._next_id + 1) & _ID_MASK or 1
        return self._next_id.to_bytes(8, "big")

    def traceparent(self, span_id: bytes) -> str:
        """The ``traceparent`` header for an outgoing call made within span ``span_id``."""
        return format_traceparent(self.trace_id, span_id, sampled=True)

    def emit(
        self,
        name: SpanName,
        start_ns: int,
        end_ns: int,
        attributes: bytes = b"",
        status: bytes = b"",
        *,
        span_id: bytes | None = None,
        parent_span_id: bytes | None = None,
    ) -> None:
        """Record a finished span (by default a child of this request's server span);
        ``attributes`` and ``status`` as ``tracing.wire`` encodes them."""
        self._sink.add(
            encode_span_parts(
                self.trace_id,
                span_id if span_id is not None else self.new_span_id(),
                self.span_id if parent_span_id is None else parent_span_id,
                name,
                start_ns,
                end_ns,
                attributes,
                status,
            )
        )

    def stage(self, name: SpanName, started: float, seconds: float) -> None:
        """Record a plain child span from a ``perf_counter`` start and a duration (the fast
        path for pipeline stages: no attributes, no status)."""
        start_ns = self._anchor_ns + int((started - self._anchor_perf) * 1e9)
        self._next_id = (self._next_id + 1) & _ID_MASK or 1
        self._sink.add(
            encode_plain_child(
                self.trace_id,
                self._next_id.to_bytes(8, "big"),
                self.span_id,
                name,
                start_ns,
                start_ns + int(seconds * 1e9),
            )
        )

    def finish(self, name: SpanName, attributes: bytes = b"", status: bytes = b"") -> None:
        """Record the request's own span, ending now."""
        self._sink.add(
            encode_span_parts(
                self.trace_id,
                self.span_id,
                self.parent_span_id,
                name,
                self._anchor_ns,
                self.ns_at(time.perf_counter()),
                attributes,
                status,
                trace_state_field(self.tracestate) if self.tracestate else b"",
            )
        )


class LeanTracer:
    """Starts request traces under a parent-based ratio sampler."""

    def __init__(self, *, sampler: ParentBasedRatioSampler, sink: SpanSink) -> None:
        self._sampler = sampler
        self._sink = sink
        self._rng = random.Random(os.urandom(16))  # noqa: S311 - ids need uniqueness, not secrecy

    def begin(self, traceparent: str | None, tracestate: str | None = None) -> RequestTrace | None:
        """A trace for this request continuing ``traceparent``, or None when not sampled."""
        parent = parse_traceparent(traceparent, tracestate) if traceparent is not None else None
        if parent is not None:
            if not parent.sampled:
                return None
            trace_id = parent.trace_id
        else:
            if self._sampler.bound == 0:
                return None
            trace_id = new_trace_id(self._rng)
            if not self._sampler.should_sample(trace_id, None):
                return None
        return RequestTrace(trace_id=trace_id, parent=parent, rng=self._rng, sink=self._sink)


async def start_lean_tracer(
    stack: AsyncExitStack,
    *,
    resource: Mapping[str, str],
    scope: str,
    control_plane: str | None,
    token: str,
    sample_ratio: float,
    control_plane_tls: ClientTlsFiles | None = None,
    settings: ExportSettings | None = None,
) -> LeanTracer | None:
    """A tracer whose spans go, batched over OTLP/gRPC, to the control plane (with ``token``) or
    to ``OTEL_EXPORTER_OTLP_ENDPOINT``, until ``stack`` closes; None when there is nowhere to
    send spans or OTEL_SDK_DISABLED is set. Shared by the edge node and the router."""
    settings = settings or export_settings(
        os.environ, control_plane=control_plane, token=token or None, control_plane_tls=control_plane_tls
    )
    if settings is None:
        logger.info("tracing off: no --control-plane and no OTEL_EXPORTER_OTLP_ENDPOINT")
        return None
    exporter = await stack.enter_async_context(
        OtlpBatchExporter(
            settings, resource=encode_resource(resource), scope=encode_scope(scope, edgecdn_version())
        )
    )
    logger.info("tracing to %s, sampling %g of new traces", settings.target, sample_ratio)
    return LeanTracer(sampler=ParentBasedRatioSampler(ratio=sample_ratio), sink=exporter)
