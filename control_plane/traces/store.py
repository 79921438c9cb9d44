"""The bounded trace store: whole traces, oldest evicted first. Pure code (clock passed in).

Bounded by total spans (``max_spans``) and age (``retention_s``, measured from a trace's
first arrival). Indexed by trace id, and by service, region, app version and error status
through insertion-ordered id sets, so a filtered newest-first listing walks only matching
traces; arrival order doubles as the time index (a trace cannot arrive before it starts,
so a walk stops at the first trace that arrived before ``since``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from control_plane.traces.records import SpanRecord

NS = 1_000_000_000


class TraceEntry:
    """All collected spans of one trace and what the indexes know about it."""

    __slots__ = (
        "arrived_ns",
        "end_ns",
        "error",
        "regions",
        "seq",
        "services",
        "spans",
        "start_ns",
        "trace_id",
        "versions",
    )

    def __init__(self, trace_id: bytes, arrived_ns: int, seq: int) -> None:
        self.trace_id = trace_id
        self.arrived_ns = arrived_ns
        self.seq = seq  # arrival order
        self.spans: list[SpanRecord] = []
        self.start_ns = 0
        self.end_ns = 0
        self.error = False
        self.services: set[str] = set()
        self.regions: set[str] = set()
        self.versions: set[str] = set()

    @property
    def root(self) -> SpanRecord:
        """The span without a parent (the earliest such), else the earliest span."""
        roots = [s for s in self.spans if not s.parent_span_id]
        return min(roots or self.spans, key=lambda s: s.start_ns)

    @property
    def region(self) -> str:
        """Region of the span that served the request (an app span), else any span's."""
        for span in self.spans:
            if span.is_request and span.region:
                return span.region
        return min(self.regions, default="")

    @property
    def app_version(self) -> str:
        return min(self.versions, default="")


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceFilter:
    """What ListTraces asks for; empty strings match everything."""

    region: str = ""
    service: str = ""
    app_version: str = ""
    errors_only: bool = False
    since_ns: int | None = None
    limit: int = 20


_Joined = tuple[int, int]  # (sequence number, wall-clock ns) when a trace joined an index key


class TraceStore:
    """Traces by id, plus secondary indexes; evicts whole traces, oldest arrival first."""

    def __init__(self, *, max_spans: int, retention_s: float) -> None:
        if max_spans < 1 or retention_s <= 0:
            raise ValueError("the trace store needs max_spans >= 1 and a positive retention")
        self.max_spans = max_spans
        self.retention_ns = int(retention_s * NS)
        self._traces: dict[bytes, TraceEntry] = {}
        # index key -> {trace id: (join seq, join time)}, in join order; a trace joins a key
        # when its first span with that key arrives, which may be after newer traces joined.
        self._by_service: dict[str, dict[bytes, _Joined]] = {}
        self._by_region: dict[str, dict[bytes, _Joined]] = {}
        self._by_version: dict[str, dict[bytes, _Joined]] = {}
        self._errors: dict[bytes, _Joined] = {}
        self._seq = 0
        self._now_ns = 0
        self.span_count = 0
        self.evicted_traces = 0

    def __len__(self) -> int:
        return len(self._traces)

    def add(self, spans: Iterable[SpanRecord], now_ns: int) -> None:
        traces = self._traces
        self._now_ns = now_ns
        for span in spans:
            entry = traces.get(span.trace_id)
            if entry is None:
                self._seq += 1
                entry = traces[span.trace_id] = TraceEntry(span.trace_id, now_ns, self._seq)
                entry.start_ns, entry.end_ns = span.start_ns, span.end_ns
            else:
                entry.start_ns = min(entry.start_ns, span.start_ns)
                entry.end_ns = max(entry.end_ns, span.end_ns)
            entry.spans.append(span)
            self._index(entry, span)
        self.evict(now_ns)

    def _index(self, entry: TraceEntry, span: SpanRecord) -> None:
        self.span_count += 1
        trace_id = entry.trace_id
        if span.service not in entry.services:
            entry.services.add(span.service)
            self._by_service.setdefault(span.service, {})[trace_id] = self._joined()
        if span.region and span.region not in entry.regions:
            entry.regions.add(span.region)
            self._by_region.setdefault(span.region, {})[trace_id] = self._joined()
        if span.app_version and span.app_version not in entry.versions:
            entry.versions.add(span.app_version)
            self._by_version.setdefault(span.app_version, {})[trace_id] = self._joined()
        if span.error and not entry.error:
            entry.error = True
            self._errors[trace_id] = self._joined()

    def _joined(self) -> _Joined:
        self._seq += 1
        return (self._seq, self._now_ns)

    def evict(self, now_ns: int) -> None:
        """Drop the oldest traces while over the span budget or past retention."""
        cutoff = now_ns - self.retention_ns
        traces = self._traces
        while traces:
            oldest = next(iter(traces.values()))
            if self.span_count <= self.max_spans and oldest.arrived_ns >= cutoff:
                return
            self._remove(oldest)

    def _remove(self, entry: TraceEntry) -> None:
        trace_id = entry.trace_id
        del self._traces[trace_id]
        self.span_count -= len(entry.spans)
        self.evicted_traces += 1
        for keys, index in (
            (entry.services, self._by_service),
            (entry.regions, self._by_region),
            (entry.versions, self._by_version),
        ):
            for key in keys:
                ids = index[key]
                del ids[trace_id]
                if not ids:
                    del index[key]
        self._errors.pop(trace_id, None)

    def get(self, trace_id: bytes) -> TraceEntry | None:
        return self._traces.get(trace_id)

    def find(self, query: TraceFilter) -> list[TraceEntry]:
        """Matching traces, most recently arrived first, at most ``query.limit``."""
        index = self._smallest_index(query)
        if index is None:
            return self._scan(query)
        # Walk the index newest join first, keeping the ``limit`` newest arrivals. A trace
        # arrives no later than it joins, so once the join being looked at is older than the
        # oldest arrival kept (or than ``since``), nothing further on can qualify.
        best: list[tuple[int, TraceEntry]] = []
        for trace_id, (join_seq, join_ns) in reversed(index.items()):
            if len(best) >= query.limit and join_seq < best[0][0]:
                break
            if query.since_ns is not None and join_ns < query.since_ns:
                break
            entry = self._traces[trace_id]
            if self._matches(entry, query):
                item = (entry.seq, entry)
                if len(best) < query.limit:
                    heapq.heappush(best, item)
                elif entry.seq > best[0][0]:
                    heapq.heapreplace(best, item)
        return [entry for _, entry in sorted(best, key=lambda item: item[0], reverse=True)]

    def _scan(self, query: TraceFilter) -> list[TraceEntry]:
        found: list[TraceEntry] = []
        for entry in reversed(self._traces.values()):
            if query.since_ns is not None and entry.arrived_ns < query.since_ns:
                break  # arrival order: every trace further on arrived (so started) earlier
            if self._matches(entry, query):
                found.append(entry)
                if len(found) >= query.limit:
                    break
        return found

    def _smallest_index(self, query: TraceFilter) -> dict[bytes, _Joined] | None:
        indexes: list[dict[bytes, _Joined]] = []
        for value, by_key in (
            (query.service, self._by_service),
            (query.region, self._by_region),
            (query.app_version, self._by_version),
        ):
            if value:
                indexes.append(by_key.get(value, {}))
        if query.errors_only:
            indexes.append(self._errors)
        return min(indexes, key=len) if indexes else None

    @staticmethod
    def _matches(entry: TraceEntry, query: TraceFilter) -> bool:
        return (
            (not query.service or query.service in entry.services)
            and (not query.region or query.region in entry.regions)
            and (not query.app_version or query.app_version in entry.versions)
            and (not query.errors_only or entry.error)
            and (query.since_ns is None or entry.start_ns >= query.since_ns)
        )
