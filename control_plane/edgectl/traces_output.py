"""How edgectl shows traces and statistics: JSON rows for scripts, and for people a table
of traces, a table of statistics, and a span tree drawn as a waterfall, each fitting 80
columns (``-o wide``: every column, whatever the width; see ``output.build_table``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from control_plane.edgectl.output import Cell, Column, age, build_table
from protos.edgecdn.v1 import traces_pb2

STATUS_NAMES = {
    traces_pb2.SPAN_STATUS_UNSET: "unset",
    traces_pb2.SPAN_STATUS_OK: "ok",
    traces_pb2.SPAN_STATUS_ERROR: "error",
}
BAR_WIDTH = 40
MIN_BAR_WIDTH = 10


def _time(message: traces_pb2.TraceSummary | traces_pb2.Span) -> str | None:
    return message.start_time.ToJsonString() if message.HasField("start_time") else None


def summary_dict(summary: traces_pb2.TraceSummary) -> dict[str, Any]:
    return {
        "trace_id": summary.trace_id,
        "root_service": summary.root_service,
        "root_name": summary.root_name,
        "start_time": _time(summary),
        "duration_ms": round(summary.duration_ms, 3),
        "status": STATUS_NAMES.get(summary.status, "unset"),
        "span_count": summary.span_count,
        "region": summary.region,
        "app_version": summary.app_version,
    }


def span_dict(span: traces_pb2.Span) -> dict[str, Any]:
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id or None,
        "service": span.service,
        "name": span.name,
        "kind": span.kind,
        "start_time": _time(span),
        "duration_ms": round(span.duration_ms, 3),
        "status": STATUS_NAMES.get(span.status, "unset"),
        "status_message": span.status_message,
        "attributes": dict(sorted(span.attributes.items())),
    }


def stats_dict(row: traces_pb2.StatsRow, window_s: float) -> dict[str, Any]:
    return {
        "region": row.region,
        "app_name": row.app_name,
        "app_version": row.app_version,
        "route": row.route or None,
        "window_s": window_s,
        "requests": row.requests,
        "errors": row.errors,
        "error_rate": round(row.error_rate, 6),
        "rps": round(row.requests_per_second, 3),
        "p50_ms": round(row.p50_ms, 3),
        "p95_ms": round(row.p95_ms, 3),
        "p99_ms": round(row.p99_ms, 3),
        "source": row.source or "spans",
        "partial": row.partial,
        "partial_reason": row.partial_reason or None,
        "cache": dict(sorted(row.cache.items())),
        "hit_ratio": round(row.hit_ratio, 6) if row.HasField("hit_ratio") else None,
    }


def traces_table(traces: Sequence[traces_pb2.TraceSummary], *, now: datetime, wide: bool = False) -> Table:
    """Whole trace ids, age, region, version, duration and status fit 80 columns; ``wide``
    adds the start time, the root span and the span count."""
    columns = [
        Column(header="TRACE ID"),
        Column(header="AGE", right=True),
        Column(header="REGION"),
        Column(header="VERSION", wrap=True),
        Column(header="MS", right=True),
        Column(header="STATUS"),
    ]
    if wide:
        columns += [Column(header="STARTED"), Column(header="ROOT"), Column(header="SPANS", right=True)]
    rows: list[list[Cell]] = []
    for trace in traces:
        status = STATUS_NAMES.get(trace.status, "unset")
        row: list[Cell] = [
            trace.trace_id,
            age(trace.start_time, now) if trace.HasField("start_time") else "-",
            trace.region or "-",
            trace.app_version or "-",
            f"{trace.duration_ms:.2f}",
            Text(status, style="red" if status == "error" else ""),
        ]
        if wide:
            row += [
                _time(trace) or "-",
                f"{trace.root_service}: {trace.root_name}",
                str(trace.span_count),
            ]
        rows.append(row)
    return build_table(columns, rows, wide=wide)


def _ordered(spans: Sequence[traces_pb2.Span]) -> list[tuple[int, traces_pb2.Span]]:
    """Depth-first (children by start time); spans whose parent was not collected are roots."""
    ids = {span.span_id for span in spans}
    children: dict[str, list[traces_pb2.Span]] = {}
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in ids else ""
        children.setdefault(parent, []).append(span)
    ordered: list[tuple[int, traces_pb2.Span]] = []
    seen: set[str] = set()

    def walk(parent: str, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time.ToNanoseconds()):
            if span.span_id in seen:  # a malformed trace may loop; show each span once
                continue
            seen.add(span.span_id)
            ordered.append((depth, span))
            walk(span.span_id, depth + 1)

    walk("", 0)
    return ordered


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """A span's bar on the trace's time line, as long as its column is wide (up to
    ``BAR_WIDTH``): in a narrow table the time line gives way before any id or figure."""

    start_ns: int
    duration_ns: int
    origin_ns: int
    total_ns: int
    style: str

    def text(self, width: int) -> Text:
        scale = width / self.total_ns if self.total_ns > 0 else 0.0
        offset = min(int((self.start_ns - self.origin_ns) * scale), width - 1)
        length = max(1, min(round(self.duration_ns * scale), width - offset))
        return (
            Text(" " * offset) + Text("█" * length, style=self.style) + Text(" " * (width - offset - length))
        )

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(MIN_BAR_WIDTH, BAR_WIDTH).with_maximum(options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.text(max(1, min(options.max_width, BAR_WIDTH)))


def waterfall(trace: traces_pb2.Trace, *, wide: bool = False) -> Table:
    """The span tree, one row per span, with a bar placed on the trace's time line (narrowed
    to fit, ``Bar``); ``wide`` adds each span's start (from the trace's), id and kind."""
    spans = list(trace.spans)
    starts = [s.start_time.ToNanoseconds() for s in spans]
    ends = [start + int(s.duration_ms * 1e6) for start, s in zip(starts, spans, strict=True)]
    origin = min(starts, default=0)
    total = max(ends, default=0) - origin
    columns = [
        Column(header="SPAN"),
        Column(header="SERVICE"),
        Column(header="MS", right=True),
        Column(header="TIMELINE", wrap=True),
        Column(header="STATUS", wrap=True),
    ]
    if wide:
        columns += [Column(header="START MS", right=True), Column(header="SPAN ID"), Column(header="KIND")]
    rows: list[list[Cell]] = []
    for depth, span in _ordered(spans):
        start = span.start_time.ToNanoseconds()
        failed = span.status == traces_pb2.SPAN_STATUS_ERROR
        style = "red" if failed else "cyan" if span.kind in {"SERVER", "CONSUMER"} else "green"
        status = STATUS_NAMES.get(span.status, "unset")
        bar = Bar(
            start_ns=start,
            duration_ns=int(span.duration_ms * 1e6),
            origin_ns=origin,
            total_ns=total,
            style=style,
        )
        row: list[Cell] = [
            "  " * depth + span.name,
            span.service,
            f"{span.duration_ms:.3f}",
            bar.text(BAR_WIDTH) if wide else bar,
            Text(
                f"{status}: {span.status_message}" if span.status_message else status,
                style="red" if failed else "",
            ),
        ]
        if wide:
            row += [f"+{(start - origin) / 1e6:.3f}", span.span_id, span.kind or "-"]
        rows.append(row)
    title = f"trace {trace.trace_id}  ({total / 1e6:.2f} ms, {len(spans)} spans)"
    return build_table(columns, rows, wide=wide, title=title)


def _route(row: traces_pb2.StatsRow, *, by_route: bool) -> str:
    if row.route:
        return row.route
    return "(no route)" if by_route else "*"


def _hit_percent(row: traces_pb2.StatsRow) -> str:
    """Blank when no request of the row touched the cache (or only bypassed it)."""
    return f"{row.hit_ratio:.1%}" if row.HasField("hit_ratio") else ""


def _cache_counts(row: traces_pb2.StatsRow) -> str:
    return " ".join(f"{result} {n:,}" for result, n in sorted(row.cache.items())) or "-"


def stats_table(
    rows: Sequence[traces_pb2.StatsRow], window_s: float, *, by_route: bool, wide: bool = False
) -> Table:
    """The rows, narrow enough for an 80-column terminal (``wide`` adds error counts, p95 and
    where the figures come from); a partial row's request count is marked ``*``
    (``stats_notes`` says why). ``HIT %`` counts REVALIDATED as a hit, BYPASS as neither."""
    columns = [Column(header="REGION"), Column(header="APP", wrap=True)]
    if by_route:
        columns.append(Column(header="ROUTE", wrap=True))
    columns += [
        Column(header="REQUESTS", right=True),
        Column(header="RPS", right=True),
        Column(header="5XX", right=True),
        Column(header="P50 MS", right=True),
        Column(header="P99 MS", right=True),
        Column(header="HIT %", right=True),
    ]
    if wide:
        columns += [
            Column(header="ERRORS", right=True),
            Column(header="P95 MS", right=True),
            Column(header="SOURCE"),
            Column(header="CACHE", wrap=True),
        ]
    cells: list[list[Cell]] = []
    for row in rows:
        line: list[Cell] = [row.region, f"{row.app_name}@{row.app_version}"]
        if by_route:
            line.append(_route(row, by_route=by_route))
        line += [
            Text(f"{row.requests:,}*", style="yellow") if row.partial else f"{row.requests:,}",
            f"{row.requests_per_second:.1f}",
            Text(f"{row.error_rate:.1%}", style="red" if row.errors else ""),
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            _hit_percent(row),
        ]
        if wide:
            line += [f"{row.errors:,}", f"{row.p95_ms:.2f}", row.source or "spans", _cache_counts(row)]
        cells.append(line)
    return build_table(columns, cells, wide=wide, title=f"requests over the last {window_s:g} s")


def stats_notes(response: traces_pb2.GetStatsResponse, *, by_route: bool) -> list[str]:
    """Footnotes under the table: where figures come from, and why a row is partial."""
    notes = []
    sources = {row.source or "spans" for row in response.rows}
    if "nodes" in sources:
        notes.append("counts per app version are the nodes' own (exact, sent with each heartbeat)")
    if "spans" in sources:
        notes.append("rows counted from spans miss the requests that were not traced (sampling) or dropped")
    for row in response.rows:
        if row.partial:
            where = f"{row.region} {row.app_name}@{row.app_version} {_route(row, by_route=by_route)}"
            notes.append(f"* partial: {where}: {row.partial_reason}")
    if any(row.cache for row in response.rows):
        notes.append("hit % = (HIT + REVALIDATED) / (HIT + REVALIDATED + MISS + STALE), from sampled spans")
    if response.spans_dropped:
        notes.append(f"nodes dropped {response.spans_dropped:,} spans in this window")
    return notes
