"""Cache outcomes in trace statistics: counted from spans, a hit ratio per row, shown by edgectl."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from control_plane.edgectl.traces_output import stats_dict, stats_notes, stats_table
from control_plane.traces.records import SpanRecord
from control_plane.traces.report import stats_rows
from control_plane.traces.stats import RollingStats, StatsKey, StatsRow, hit_ratio
from protos.edgecdn.v1 import traces_pb2
from tests.control_plane.test_traces_stats import S, span

RESULTS = ("HIT", "MISS", "STALE", "REVALIDATED", "BYPASS")


def cached(n: int, result: str, *, route: str = "/a") -> SpanRecord:
    record = span(n, end_s=100.5, duration_ms=2, route=route)
    record.message.attributes.add(key="edgecdn.cache").value.string_value = result
    return SpanRecord(record.message, record.resource)


def test_spans_count_their_cache_outcome_per_version() -> None:
    stats = RollingStats(bucket_s=1, max_window_s=60)
    spans = [cached(n, "HIT") for n in range(1, 7)]
    spans += [cached(10, "REVALIDATED"), cached(11, "MISS", route="/b"), cached(12, "STALE")]
    spans += [cached(13, "BYPASS"), span(14, end_s=100.5, duration_ms=2)]  # the last: no cache
    stats.add(spans, now_ns=101 * S)
    (row,) = stats.query(window_s=10, now_ns=101 * S, by_route=False)
    assert dict(row.cache) == {"HIT": 6, "REVALIDATED": 1, "MISS": 1, "STALE": 1, "BYPASS": 1}
    assert row.hit_ratio == 7 / 9  # REVALIDATED is a hit, BYPASS is neither
    a, b = stats.query(window_s=10, now_ns=101 * S, by_route=True)
    assert dict(b.cache) == {"MISS": 1}
    assert b.hit_ratio == 0.0
    assert sum(dict(a.cache).values()) == 9


def test_no_cache_no_ratio() -> None:
    stats = RollingStats(bucket_s=1, max_window_s=60)
    stats.add([span(1, end_s=100.5, duration_ms=2)], now_ns=101 * S)
    (row,) = stats.query(window_s=10, now_ns=101 * S)
    assert (row.cache, row.hit_ratio) == ((), None)
    assert hit_ratio({"BYPASS": 5}) is None


@given(st.dictionaries(st.sampled_from(RESULTS), st.integers(0, 10_000)))
def test_the_hit_ratio_is_a_share_and_ignores_bypass(cache: dict[str, int]) -> None:
    ratio = hit_ratio(cache)
    looked_up = sum(n for result, n in cache.items() if result != "BYPASS")
    assert (ratio is None) == (looked_up == 0)
    if ratio is not None:
        assert 0 <= ratio <= 1
        assert hit_ratio({**cache, "BYPASS": cache.get("BYPASS", 0) + 7}) == ratio


def _row(route: str, cache: tuple[tuple[str, int], ...] = (), source: str = "spans") -> StatsRow:
    key = StatsKey(region="eu", app_name="app", app_version="1.0", route=route)
    return StatsRow(key=key, window_s=60, requests=10, errors=0, p50_ms=1, p95_ms=1, p99_ms=1,
                    cache=cache, source=source)  # type: ignore[arg-type]  # fmt: skip


def test_node_rows_take_the_cache_outcomes_of_their_spans() -> None:
    spans = [_row("/a", (("HIT", 3),)), _row("/b", (("HIT", 1), ("MISS", 2)))]
    nodes = [_row("", source="nodes")]
    (version,) = stats_rows(span_rows=[_row("", (("HIT", 4), ("MISS", 2)))], node_rows=nodes,
                            spans_dropped={}, by_route=False)  # fmt: skip
    assert (version.source, dict(version.cache)) == ("nodes", {"HIT": 4, "MISS": 2})
    rows = stats_rows(span_rows=spans, node_rows=nodes, spans_dropped={}, by_route=True)
    assert [dict(r.cache) for r in rows] == [{"HIT": 4, "MISS": 2}, {"HIT": 3}, {"HIT": 1, "MISS": 2}]


def test_edgectl_shows_a_hit_percent_blank_without_cache() -> None:
    rows = [
        traces_pb2.StatsRow(region="eu-west-1", app_name="geo-hello", app_version="1.0.0", requests=1200,
                            cache={"HIT": 900, "REVALIDATED": 60, "MISS": 240}, hit_ratio=0.8),
        traces_pb2.StatsRow(region="us-east-1", app_name="geo-hello", app_version="1.0.0", requests=77),
    ]  # fmt: skip
    console = Console(width=80, record=True, color_system=None)
    console.print(stats_table(rows, 60, by_route=False))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "HIT %" in text
    assert "80.0%" in text
    us_line = next(line for line in text.splitlines() if "us-east-1" in line)
    assert "%" not in us_line.replace("0.0%", "")  # 5xx is 0.0%, hit % blank
    assert stats_dict(rows[0], 60)["hit_ratio"] == 0.8
    assert stats_dict(rows[0], 60)["cache"] == {"HIT": 900, "MISS": 240, "REVALIDATED": 60}
    assert stats_dict(rows[1], 60)["hit_ratio"] is None
    notes = stats_notes(traces_pb2.GetStatsResponse(rows=rows), by_route=False)
    assert any(note.startswith("hit % = (HIT + REVALIDATED)") for note in notes)
    wide = Console(width=200, record=True, color_system=None)
    wide.print(stats_table(rows, 60, by_route=False, wide=True))
    assert "HIT 900 MISS 240 REVALIDATED 60" in wide.export_text()
