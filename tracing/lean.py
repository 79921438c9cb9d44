"""A lean tracer for hot paths: one ``RequestTrace`` per sampled request, spans encoded
straight to OTLP bytes (``tracing.wire``) and handed to a sink (the batch exporter).

Unsampled requests cost a header lookup and one comparison; nothing is allocated for
them. Span times are wall-clock nanoseconds anchored once per request, offsets measured
with ``perf_counter`` (monotonic, so stage spans nest exactly inside their parent).
"""

from __future__ import annotations

import os
import random
import time
from typing import Protocol

from tracing.context import TraceParent, format_traceparent, new_span_id, new_trace_id, parse_traceparent
from tracing.sampling import ParentBasedRatioSampler
from tracing.wire import SpanKind, StatusCode, encode_span


class SpanSink(Protocol):
    def add(self, span: bytes) -> None: ...


class RequestTrace:
    """The server span of one sampled request, and the ids and clock its children use."""

    __slots__ = (
        "_anchor_ns",
        "_anchor_perf",
        "_rng",
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
        self._rng = rng
        self._sink = sink
        self.span_id = new_span_id(rng)
        self._anchor_ns = time.time_ns()
        self._anchor_perf = time.perf_counter()

    @property
    def start_ns(self) -> int:
        return self._anchor_ns

    def ns_at(self, perf: float) -> int:
        """Wall-clock nanoseconds of a ``time.perf_counter()`` reading taken during the request."""
        return self._anchor_ns + int((perf - self._anchor_perf) * 1e9)

    def new_span_id(self) -> bytes:
        return new_span_id(self._rng)

    def traceparent(self, span_id: bytes) -> str:
        """The ``traceparent`` header for an outgoing call made within span ``span_id``."""
        return format_traceparent(self.trace_id, span_id, sampled=True)

    def emit(
        self,
        name: str,
        *,
        kind: SpanKind,
        start_ns: int,
        end_ns: int,
        attributes: bytes = b"",
        status: StatusCode = StatusCode.UNSET,
        status_message: str = "",
        span_id: bytes | None = None,
        parent_span_id: bytes | None = None,
    ) -> None:
        """Record a finished span; by default a child of this request's server span."""
        self._sink.add(
            encode_span(
                trace_id=self.trace_id,
                span_id=span_id if span_id is not None else new_span_id(self._rng),
                parent_span_id=self.span_id if parent_span_id is None else parent_span_id,
                name=name,
                kind=kind,
                start_ns=start_ns,
                end_ns=end_ns,
                attributes=attributes,
                status=status,
                status_message=status_message,
            )
        )

    def finish(
        self,
        name: str,
        *,
        kind: SpanKind = SpanKind.SERVER,
        attributes: bytes = b"",
        status: StatusCode = StatusCode.UNSET,
        status_message: str = "",
    ) -> None:
        """Record the request's own span, ending now."""
        self._sink.add(
            encode_span(
                trace_id=self.trace_id,
                span_id=self.span_id,
                parent_span_id=self.parent_span_id,
                name=name,
                kind=kind,
                start_ns=self._anchor_ns,
                end_ns=self.ns_at(time.perf_counter()),
                attributes=attributes,
                status=status,
                status_message=status_message,
                trace_state=self.tracestate,
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
