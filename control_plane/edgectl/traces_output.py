"""How edgectl shows traces and statistics: JSON rows for scripts, and for people a table
of traces, a table of statistics, and a span tree drawn as a waterfall."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from protos.edgecdn.v1 import traces_pb2

STATUS_NAMES = {
    traces_pb2.SPAN_STATUS_UNSET: "unset",
    traces_pb2.SPAN_STATUS_OK: "ok",
    traces_pb2.SPAN_STATUS_ERROR: "error",
}
BAR_WIDTH = 40


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
    }


def traces_table(traces: Sequence[traces_pb2.TraceSummary]) -> Table:
    table = Table()
    table.add_column("trace id", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("root", overflow="fold")
    table.add_column("region", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("spans", justify="right")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("status")
    for trace in traces:
        status = STATUS_NAMES.get(trace.status, "unset")
        table.add_row(
            trace.trace_id,
            trace.start_time.ToDatetime().strftime("%H:%M:%S.%f")[:-3],
            f"{trace.root_service}: {trace.root_name}",
            trace.region or "-",
            trace.app_version or "-",
            str(trace.span_count),
            f"{trace.duration_ms:.2f} ms",
            Text(status, style="red" if status == "error" else ""),
        )
    return table


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


def _bar(start_ns: int, duration_ns: int, origin_ns: int, total_ns: int, style: str) -> Text:
    scale = BAR_WIDTH / total_ns if total_ns > 0 else 0.0
    offset = min(int((start_ns - origin_ns) * scale), BAR_WIDTH - 1)
    length = max(1, min(round(duration_ns * scale), BAR_WIDTH - offset))
    return Text(" " * offset) + Text("█" * length, style=style) + Text(" " * (BAR_WIDTH - offset - length))


def waterfall(trace: traces_pb2.Trace) -> Table:
    """The span tree, one row per span, with a bar placed on the trace's time line."""
    spans = list(trace.spans)
    starts = [s.start_time.ToNanoseconds() for s in spans]
    ends = [start + int(s.duration_ms * 1e6) for start, s in zip(starts, spans, strict=True)]
    origin = min(starts, default=0)
    total = max(ends, default=0) - origin
    table = Table(title=f"trace {trace.trace_id}  ({total / 1e6:.2f} ms, {len(spans)} spans)")
    table.add_column("span", no_wrap=True)
    table.add_column("service", no_wrap=True)
    table.add_column("start", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("timeline", no_wrap=True)
    table.add_column("status", overflow="fold")
    for depth, span in _ordered(spans):
        start = span.start_time.ToNanoseconds()
        failed = span.status == traces_pb2.SPAN_STATUS_ERROR
        style = "red" if failed else "cyan" if span.kind in {"SERVER", "CONSUMER"} else "green"
        status = STATUS_NAMES.get(span.status, "unset")
        table.add_row(
            "  " * depth + span.name,
            span.service,
            f"+{(start - origin) / 1e6:.2f} ms",
            f"{span.duration_ms:.3f} ms",
            _bar(start, int(span.duration_ms * 1e6), origin, total, style),
            Text(
                f"{status}: {span.status_message}" if span.status_message else status,
                style="red" if failed else "",
            ),
        )
    return table


def _route(row: traces_pb2.StatsRow, *, by_route: bool) -> str:
    if row.route:
        return row.route
    return "(no route)" if by_route else "*"


def stats_table(rows: Sequence[traces_pb2.StatsRow], window_s: float, *, by_route: bool) -> Table:
    """The rows, narrow enough for an 80-column terminal (errors and p95 are in ``-o json``);
    a partial row's request count is marked ``*`` (``stats_notes`` says why)."""
    table = Table(title=f"requests over the last {window_s:g} s", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("region", overflow="fold")
    table.add_column("app", overflow="fold")
    if by_route:
        table.add_column("route", overflow="fold")
    for column in ("requests", "rps", "5xx", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        cells: list[str | Text] = [row.region, f"{row.app_name}@{row.app_version}"]
        if by_route:
            cells.append(_route(row, by_route=by_route))
        cells += [
            Text(f"{row.requests:,}*", style="yellow") if row.partial else f"{row.requests:,}",
            f"{row.requests_per_second:.1f}",
            Text(f"{row.error_rate:.1%}", style="red" if row.errors else ""),
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
        ]
        table.add_row(*cells)
    return table


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
    if response.spans_dropped:
        notes.append(f"nodes dropped {response.spans_dropped:,} spans in this window")
    return notes
