"""Rolling request statistics per (region, app name, app version, route). Pure code.

Fed with the SERVER spans of app requests (``SpanRecord.is_request``); time is the span's
end. Each key keeps one cell per time bucket (``bucket_s``) — a request count, an error
count (ERROR status or HTTP 5xx) and an HDR histogram of latency in microseconds — for
``max_window_s``. A query merges the buckets overlapping ``[now - window, now]`` (so the
window is rounded out to whole buckets) into rows. Spans are sampled and a busy node may
drop some, so these counts are exact only when every span arrived: the exact counts per
app version come from the nodes' heartbeats (``control_plane.traces.figures``, which
rollout gates read); these rows give the per-route breakdown and cover nodes that send
no figures (``control_plane.traces.report`` combines the two). Each cell also counts the
spans' cache outcomes (``edgecdn.cache``), from which a row's hit ratio comes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from hdrh.histogram import HdrHistogram

from control_plane.traces.records import SpanRecord

NS = 1_000_000_000
LOWEST_US = 1
HIGHEST_US = 60 * 1_000_000  # a minute; slower requests are recorded as a minute
SIGNIFICANT_FIGURES = 2  # 1% value precision, as in most latency dashboards
CACHE_HITS = frozenset({"HIT", "REVALIDATED"})  # a revalidated answer spared the body fetch
CACHE_MISSES = frozenset({"MISS", "STALE"})  # BYPASS is neither: the answer was not cacheable


def hit_ratio(cache: Mapping[str, int]) -> float | None:
    """(HIT + REVALIDATED) / (HIT + REVALIDATED + MISS + STALE); ``None`` when none of those."""
    hits = sum(n for result, n in cache.items() if result in CACHE_HITS)
    looked_up = hits + sum(n for result, n in cache.items() if result in CACHE_MISSES)
    return hits / looked_up if looked_up else None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsKey:
    region: str
    app_name: str
    app_version: str
    route: str


Source = Literal["spans", "nodes"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsRow:
    """Figures of one key over one window. ``source``: counted from spans here, or added up
    from the nodes' heartbeat figures (``control_plane.traces.figures``); ``partial`` when
    requests may be missing, ``partial_reason`` saying why."""

    key: StatsKey
    window_s: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    partial: bool = False
    partial_reason: str = ""
    source: Source = "spans"
    cache: tuple[tuple[str, int], ...] = ()  # (outcome, spans), sorted; empty without the cache

    @property
    def hit_ratio(self) -> float | None:
        return hit_ratio(dict(self.cache))

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.window_s if self.window_s > 0 else 0.0


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


class _Cell:
    __slots__ = ("cache", "errors", "histogram", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.cache: Counter[str] = Counter()
        self.histogram = new_histogram()


class RollingStats:
    """Bucketed counters and histograms over the last ``max_window_s``."""

    def __init__(self, *, bucket_s: float, max_window_s: float) -> None:
        if bucket_s <= 0 or max_window_s < bucket_s:
            raise ValueError("statistics need 0 < bucket <= max window")
        self.bucket_ns = int(bucket_s * NS)
        self.max_window_ns = int(max_window_s * NS)
        self._buckets: dict[int, dict[StatsKey, _Cell]] = {}
        self._keys: dict[tuple[str, str, str, str], StatsKey] = {}
        self._oldest_kept = 0

    @property
    def max_window_s(self) -> float:
        return self.max_window_ns / NS

    def add(self, spans: Iterable[SpanRecord], now_ns: int) -> int:
        """Count the request spans among ``spans``; returns how many were counted."""
        self._prune(now_ns)
        counted = 0
        for span in spans:
            if not span.is_request:
                continue
            bucket = span.end_ns // self.bucket_ns
            if bucket < self._oldest_kept:
                continue  # older than any window we answer for
            raw = (span.region, span.app_name, span.app_version, span.route)
            key = self._keys.get(raw)
            if key is None:
                key = self._keys[raw] = StatsKey(
                    region=raw[0], app_name=raw[1], app_version=raw[2], route=raw[3]
                )
            cells = self._buckets.get(bucket)
            if cells is None:
                cells = self._buckets[bucket] = {}
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = _Cell()
            cell.requests += 1
            if span.error:
                cell.errors += 1
            if span.cache:
                cell.cache[span.cache] += 1
            micros = span.duration_ns // 1000
            cell.histogram.record_value(min(max(micros, LOWEST_US), HIGHEST_US))
            counted += 1
        return counted

    def _prune(self, now_ns: int) -> None:
        oldest = (now_ns - self.max_window_ns) // self.bucket_ns
        if oldest <= self._oldest_kept:
            return
        self._oldest_kept = oldest
        for bucket in [b for b in self._buckets if b < oldest]:
            del self._buckets[bucket]

    def query(
        self,
        *,
        window_s: float,
        now_ns: int,
        region: str = "",
        app_name: str = "",
        by_route: bool = True,
    ) -> list[StatsRow]:
        """Rows for every key with requests in the window, sorted by region, app, version, route."""
        if not 0 < window_s <= self.max_window_s:
            raise ValueError(f"window must be within (0, {self.max_window_s:g}] seconds")
        self._prune(now_ns)
        first = (now_ns - int(window_s * NS)) // self.bucket_ns
        merged: dict[StatsKey, _Cell] = {}
        for bucket, cells in self._buckets.items():
            if bucket < first:
                continue
            for key, cell in cells.items():
                if (region and key.region != region) or (app_name and key.app_name != app_name):
                    continue
                row_key = (
                    key
                    if by_route
                    else StatsKey(
                        region=key.region, app_name=key.app_name, app_version=key.app_version, route=""
                    )
                )
                total = merged.get(row_key)
                if total is None:
                    total = merged[row_key] = _Cell()
                total.requests += cell.requests
                total.errors += cell.errors
                total.cache.update(cell.cache)
                total.histogram.add(cell.histogram)
        rows = [_row(key, cell, window_s) for key, cell in merged.items() if cell.requests]
        rows.sort(key=lambda r: (r.key.region, r.key.app_name, r.key.app_version, r.key.route))
        return rows


def _row(key: StatsKey, cell: _Cell, window_s: float) -> StatsRow:
    histogram = cell.histogram
    return StatsRow(
        key=key,
        window_s=window_s,
        requests=cell.requests,
        errors=cell.errors,
        p50_ms=histogram.get_value_at_percentile(50) / 1000,
        p95_ms=histogram.get_value_at_percentile(95) / 1000,
        p99_ms=histogram.get_value_at_percentile(99) / 1000,
        cache=tuple(sorted(cell.cache.items())),
    )
