"""Exact request figures per (region, app, version), added up from the nodes' heartbeats. Pure.

Every heartbeat carries, per app version, what the node answered since its previous one:
requests, 5xx answers and a latency histogram (``decode_heartbeat``). ``NodeFigures`` adds
them into one cell per (region, app name, app version) and time bucket (by arrival time,
``bucket_s``, 1 s by default) for ``max_window_s``. These counts are exact whatever the
trace sampling ratio and however many spans a busy node drops; spans remain the source of
traces and of the per-route breakdown (``control_plane.traces.stats``).

Rollout gates read ``NodeFigures.version_figures``: one app version in a set of regions
since an instant (a wave's bake start), with the reasons the figures may be partial: a
node that served the version and has gone silent (its figures arrive when it reports
again), or a window that starts before the control plane did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from control_plane.traces.latency import EMPTY, Latency, LayoutError, add_into, decode
from control_plane.traces.stats import StatsKey, StatsRow
from protos.edgecdn.v1 import nodes_pb2

logger = logging.getLogger(__name__)

NS = 1_000_000_000
DEFAULT_BUCKET_S = 1.0
DEFAULT_MAX_WINDOW_S = 900.0
AppVersion = tuple[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionReport:
    """What one app version answered on one node since the node's previous heartbeat."""

    app_name: str
    app_version: str
    requests: int
    errors: int
    latency: Latency = EMPTY


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeReport:
    """One heartbeat's figures."""

    node_id: str
    region: str
    versions: tuple[VersionReport, ...] = ()
    spans_dropped: int = 0
    last: bool = False  # the node is stopping: nothing more will come from it


def decode_heartbeat(node_id: str, region: str, heartbeat: nodes_pb2.Heartbeat) -> NodeReport:
    """A heartbeat's figures as values. A histogram that breaks its layout is left out (its
    counts are kept): one node's bad encoding must not end its session or lose counts."""
    versions = []
    for figures in heartbeat.figures:
        try:
            latency = decode(figures.latency)
        except LayoutError as exc:
            logger.warning(
                "node %s: latency of %s@%s ignored: %s", node_id, figures.app_name, figures.app_version, exc
            )
            latency = EMPTY
        versions.append(
            VersionReport(
                app_name=figures.app_name,
                app_version=figures.app_version,
                requests=figures.requests,
                errors=min(figures.errors_5xx, figures.requests),
                latency=latency,
            )
        )
    return NodeReport(
        node_id=node_id,
        region=region,
        versions=tuple(versions),
        spans_dropped=heartbeat.spans_dropped,
        last=heartbeat.last,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionFigures:
    """What one app version answered in a set of regions over ``[since_ns, until_ns]``."""

    regions: frozenset[str]  # empty: every region
    app_name: str
    app_version: str
    since_ns: int
    until_ns: int
    requests: int = 0
    errors: int = 0
    latency: Latency = EMPTY
    partial_reasons: tuple[str, ...] = ()

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p50_ms(self) -> float | None:
        return self.latency.percentile_ms(50)

    @property
    def p95_ms(self) -> float | None:
        return self.latency.percentile_ms(95)

    @property
    def p99_ms(self) -> float | None:
        """None when there were no requests."""
        return self.latency.percentile_ms(99)

    @property
    def partial(self) -> bool:
        return bool(self.partial_reasons)


class _Cell:
    __slots__ = ("counts", "errors", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.counts: dict[int, int] = {}


@dataclass(slots=True)
class _Node:
    region: str
    last_report_ns: int
    said_last: bool = False
    versions: set[AppVersion] = field(default_factory=set)


class NodeFigures:
    """Heartbeat figures per (region, app, version) and time bucket, over ``max_window_s``.

    ``silent_after_s``: a node that has not reported for longer is silent, and the figures
    of the versions it served are partial until it reports again (its next heartbeat
    carries what it answered meanwhile).
    """

    def __init__(
        self,
        *,
        silent_after_s: float,
        started_ns: int,
        bucket_s: float = DEFAULT_BUCKET_S,
        max_window_s: float = DEFAULT_MAX_WINDOW_S,
    ) -> None:
        if bucket_s <= 0 or max_window_s < bucket_s:
            raise ValueError("figures need 0 < bucket <= max window")
        self.bucket_ns = int(bucket_s * NS)
        self.max_window_ns = int(max_window_s * NS)
        self.silent_after_ns = int(silent_after_s * NS)
        self.started_ns = started_ns
        self._cells: dict[int, dict[tuple[str, str, str], _Cell]] = {}
        self._dropped: dict[int, dict[str, int]] = {}
        self._nodes: dict[str, _Node] = {}
        self._oldest_kept = 0

    @property
    def max_window_s(self) -> float:
        return self.max_window_ns / NS

    # -- recording -----------------------------------------------------------------------

    def record(self, report: NodeReport, now_ns: int) -> None:
        """Add one heartbeat's figures, counted at ``now_ns`` (their arrival)."""
        self._prune(now_ns)
        bucket = now_ns // self.bucket_ns
        node = self._nodes.get(report.node_id)
        if node is None or node.region != report.region:
            node = self._nodes[report.node_id] = _Node(region=report.region, last_report_ns=now_ns)
        node.last_report_ns = now_ns
        node.said_last = report.last
        cells = self._cells.setdefault(bucket, {})
        for version in report.versions:
            if version.requests == 0:
                continue
            node.versions.add((version.app_name, version.app_version))
            key = (report.region, version.app_name, version.app_version)
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = _Cell()
            cell.requests += version.requests
            cell.errors += version.errors
            add_into(cell.counts, version.latency)
        if report.spans_dropped:
            dropped = self._dropped.setdefault(bucket, {})
            dropped[report.region] = dropped.get(report.region, 0) + report.spans_dropped

    def _prune(self, now_ns: int) -> None:
        oldest = (now_ns - self.max_window_ns) // self.bucket_ns
        if oldest <= self._oldest_kept:
            return
        self._oldest_kept = oldest
        for table in (self._cells, self._dropped):
            for bucket in [b for b in table if b < oldest]:
                del table[bucket]
        forget_before = now_ns - self.max_window_ns
        for node_id in [n for n, node in self._nodes.items() if node.last_report_ns < forget_before]:
            del self._nodes[node_id]

    # -- queries -------------------------------------------------------------------------

    def _first_bucket(self, since_ns: int) -> int:
        return max(since_ns // self.bucket_ns, self._oldest_kept)

    def version_figures(
        self, *, regions: Iterable[str], app_name: str, app_version: str, since_ns: int, now_ns: int
    ) -> VersionFigures:
        """What ``app_name@app_version`` answered in ``regions`` (all when empty) from
        ``since_ns`` (rounded down to a bucket) until now; the rollout gates' figures."""
        self._prune(now_ns)
        wanted = frozenset(regions)
        first = self._first_bucket(since_ns)
        requests = errors = 0
        counts: dict[int, int] = {}
        for bucket, cells in self._cells.items():
            if bucket < first:
                continue
            for (region, name, version), cell in cells.items():
                if name == app_name and version == app_version and (not wanted or region in wanted):
                    requests += cell.requests
                    errors += cell.errors
                    for index, count in cell.counts.items():
                        counts[index] = counts.get(index, 0) + count
        return VersionFigures(
            regions=wanted,
            app_name=app_name,
            app_version=app_version,
            since_ns=since_ns,
            until_ns=now_ns,
            requests=requests,
            errors=errors,
            latency=Latency.from_counts(counts),
            partial_reasons=self.partial_reasons(
                regions=wanted, app_name=app_name, app_version=app_version, since_ns=since_ns, now_ns=now_ns
            ),
        )

    def partial_reasons(
        self, *, regions: frozenset[str], app_name: str, app_version: str, since_ns: int, now_ns: int
    ) -> tuple[str, ...]:
        """Why figures of this version in ``regions`` (all when empty) since ``since_ns`` may
        miss requests: silent nodes that served it, a window older than the control plane."""
        reasons = []
        if since_ns < self.started_ns:
            uptime_s = (now_ns - self.started_ns) / NS
            reasons.append(f"counted since the control plane started {uptime_s:.0f} s ago")
        elif since_ns < now_ns - self.max_window_ns:
            reasons.append(f"figures are kept for {self.max_window_s:g} s")
        for node_id, node in sorted(self._nodes.items()):
            silent_ns = now_ns - node.last_report_ns
            if (
                silent_ns > self.silent_after_ns
                and not node.said_last
                and (not regions or node.region in regions)
                and (app_name, app_version) in node.versions
            ):
                reasons.append(f"{node_id} has not reported for {silent_ns / NS:.0f} s")
        return tuple(reasons)

    def rows(self, *, window_s: float, now_ns: int, region: str = "", app_name: str = "") -> list[StatsRow]:
        """One row per (region, app, version) with requests in the window ending now
        (rounded out to whole buckets), sorted; ``source`` is ``nodes``."""
        self._prune(now_ns)
        since_ns = now_ns - int(window_s * NS)
        first = self._first_bucket(since_ns)
        merged: dict[tuple[str, str, str], _Cell] = {}
        for bucket, cells in self._cells.items():
            if bucket < first:
                continue
            for key, cell in cells.items():
                if (region and key[0] != region) or (app_name and key[1] != app_name):
                    continue
                total = merged.get(key)
                if total is None:
                    total = merged[key] = _Cell()
                total.requests += cell.requests
                total.errors += cell.errors
                for index, count in cell.counts.items():
                    total.counts[index] = total.counts.get(index, 0) + count
        rows = []
        for (row_region, name, version), cell in sorted(merged.items()):
            latency = Latency.from_counts(cell.counts)
            reasons = self.partial_reasons(
                regions=frozenset({row_region}),
                app_name=name,
                app_version=version,
                since_ns=since_ns,
                now_ns=now_ns,
            )
            rows.append(
                StatsRow(
                    key=StatsKey(region=row_region, app_name=name, app_version=version, route=""),
                    window_s=window_s,
                    requests=cell.requests,
                    errors=cell.errors,
                    p50_ms=latency.percentile_ms(50) or 0.0,
                    p95_ms=latency.percentile_ms(95) or 0.0,
                    p99_ms=latency.percentile_ms(99) or 0.0,
                    partial=bool(reasons),
                    partial_reason="; ".join(reasons),
                    source="nodes",
                )
            )
        return rows

    def spans_dropped(self, *, window_s: float, now_ns: int, region: str = "") -> dict[str, int]:
        """Spans the nodes of each region (or of ``region``) reported dropping in the window."""
        self._prune(now_ns)
        first = self._first_bucket(now_ns - int(window_s * NS))
        totals: dict[str, int] = {}
        for bucket, dropped in self._dropped.items():
            if bucket < first:
                continue
            for where, count in dropped.items():
                if not region or where == region:
                    totals[where] = totals.get(where, 0) + count
        return totals
