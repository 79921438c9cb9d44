"""Exact figures from heartbeats: the node's book of deltas, the control plane's sums over
regions and windows (what rollout gates read), partial markers, and what GetStats answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from control_plane.traces.figures import NodeFigures, NodeReport, VersionReport, decode_heartbeat
from control_plane.traces.latency import Latency
from control_plane.traces.report import ALL_ROUTES, stats_rows
from control_plane.traces.stats import StatsKey, StatsRow
from edge_node.figures import FiguresBook

S = 1_000_000_000
T0 = 1_000 * S


def figures(silent_after_s: float = 3.0) -> NodeFigures:
    return NodeFigures(silent_after_s=silent_after_s, started_ns=T0, max_window_s=60)


def report(
    node: str, region: str, *versions: VersionReport, dropped: int = 0, last: bool = False
) -> NodeReport:
    return NodeReport(node_id=node, region=region, versions=versions, spans_dropped=dropped, last=last)


def version(name: str = "app", ver: str = "1.0", *, latencies: list[int], errors: int = 0) -> VersionReport:
    return VersionReport(
        app_name=name,
        app_version=ver,
        requests=len(latencies),
        errors=errors,
        latency=Latency.from_values(latencies),
    )


def test_gate_figures_add_up_regions_since_an_instant() -> None:
    store = figures(silent_after_s=10)
    store.record(report("a-1", "a", version(latencies=[100] * 10, errors=1)), T0 + 1 * S)
    store.record(report("a-2", "a", version(latencies=[200] * 5)), T0 + 2 * S)
    store.record(report("b-1", "b", version(latencies=[300] * 7, errors=7)), T0 + 2 * S)
    store.record(report("c-1", "c", version(ver="0.9", latencies=[50] * 3)), T0 + 2 * S)
    store.record(report("a-1", "a", version(latencies=[100] * 4)), T0 + 5 * S)

    both = store.version_figures(
        regions={"a", "b"}, app_name="app", app_version="1.0", since_ns=T0, now_ns=T0 + 6 * S
    )
    assert (both.requests, both.errors) == (26, 8)
    assert both.p99_ms is not None
    assert abs(both.p99_ms - 0.3) <= 0.003  # 300 µs, within 1%
    assert not both.partial
    since = store.version_figures(
        regions={"a"}, app_name="app", app_version="1.0", since_ns=T0 + 3 * S, now_ns=T0 + 6 * S
    )
    assert (since.requests, since.errors) == (4, 0)
    everywhere = store.version_figures(
        regions=(), app_name="app", app_version="1.0", since_ns=T0, now_ns=T0 + 6 * S
    )
    assert everywhere.requests == 26
    none = store.version_figures(
        regions={"c"}, app_name="app", app_version="1.0", since_ns=T0, now_ns=T0 + 6 * S
    )
    assert (none.requests, none.p99_ms, none.error_rate) == (0, None, 0.0)


def test_a_silent_node_makes_the_versions_it_served_partial_until_it_reports() -> None:
    store = figures(silent_after_s=3)
    store.record(report("a-1", "a", version(latencies=[100])), T0 + 1 * S)
    store.record(report("a-2", "a", version(latencies=[100])), T0 + 1 * S)
    store.record(report("a-2", "a"), T0 + 9 * S)  # a-2 keeps reporting (nothing new)

    def partial(now_s: int) -> tuple[str, ...]:
        return store.version_figures(
            regions={"a"}, app_name="app", app_version="1.0", since_ns=T0, now_ns=T0 + now_s * S
        ).partial_reasons

    assert partial(3) == ()
    assert partial(10) == ("a-1 has not reported for 9 s",)
    other = store.version_figures(
        regions={"a"}, app_name="app", app_version="2.0", since_ns=T0, now_ns=T0 + 10 * S
    )
    assert not other.partial, "a-1 never served 2.0"
    store.record(report("a-1", "a", version(latencies=[100] * 5)), T0 + 10 * S)  # back, with what it served
    assert partial(10) == ()
    store.record(report("a-1", "a", last=True), T0 + 11 * S)
    store.record(report("a-2", "a", last=True), T0 + 11 * S)
    assert partial(30) == (), "a node that said goodbye is not silent"


def test_a_window_older_than_the_control_plane_is_partial() -> None:
    store = figures()
    store.record(report("a-1", "a", version(latencies=[100])), T0 + 1 * S)
    (row,) = store.rows(window_s=30, now_ns=T0 + 2 * S)
    assert row.partial
    assert "control plane started 2 s ago" in row.partial_reason
    (row,) = store.rows(window_s=2, now_ns=T0 + 2 * S)
    assert not row.partial


def test_rows_are_per_region_and_version_and_old_buckets_are_pruned() -> None:
    store = figures()
    store.record(report("a-1", "a", version(latencies=[100] * 3), dropped=4), T0 + 1 * S)
    store.record(report("b-1", "b", version(ver="2.0", latencies=[100] * 2)), T0 + 1 * S)
    rows = store.rows(window_s=5, now_ns=T0 + 3 * S)
    assert [(r.key.region, r.key.app_version, r.requests, r.source) for r in rows] == [
        ("a", "1.0", 3, "nodes"),
        ("b", "2.0", 2, "nodes"),
    ]
    assert store.spans_dropped(window_s=5, now_ns=T0 + 3 * S) == {"a": 4}
    assert store.rows(window_s=5, now_ns=T0 + 3 * S, region="b")[0].key.region == "b"
    assert store.rows(window_s=5, now_ns=T0 + 100 * S) == []


def test_a_heartbeat_decodes_to_a_report() -> None:
    book = FiguresBook(spans_dropped=lambda: 7)
    cell = book.cell("app", "1.0")
    for status, micros in ((200, 120), (503, 5000), (404, 80)):
        cell.record(status, micros)
    decoded = decode_heartbeat("a-1", "a", book.take())
    assert decoded.spans_dropped == 7
    (only,) = decoded.versions
    assert (only.app_name, only.app_version, only.requests, only.errors) == ("app", "1.0", 3, 1)
    assert only.latency == Latency.from_values([120, 5000, 80])


# -- the node's book: deltas, given back when a heartbeat is not written ------------------

records = st.lists(
    st.tuples(st.sampled_from(["1.0", "2.0"]), st.sampled_from([200, 404, 500, 503]), st.integers(0, 10**7)),
    max_size=30,
)


@given(st.lists(st.tuples(records, st.booleans()), max_size=10))
def test_delivered_deltas_add_up_to_the_counters(
    rounds: list[tuple[list[tuple[str, int, int]], bool]],
) -> None:
    book = FiguresBook()
    store = figures()
    everything: dict[str, list[int]] = {"1.0": [], "2.0": []}
    errors = {"1.0": 0, "2.0": 0}
    for n, (answers, delivered) in enumerate(rounds):
        for ver, status, micros in answers:
            book.cell("app", ver).record(status, micros)
            everything[ver].append(micros)
            errors[ver] += status >= 500
        heartbeat = book.take()
        if delivered:
            store.record(decode_heartbeat("a-1", "a", heartbeat), T0 + n * S)
        else:
            book.give_back(heartbeat)
    store.record(decode_heartbeat("a-1", "a", book.take()), T0 + 20 * S)
    for ver, latencies in everything.items():
        seen = store.version_figures(
            regions={"a"}, app_name="app", app_version=ver, since_ns=T0, now_ns=T0 + 20 * S
        )
        assert (seen.requests, seen.errors) == (len(latencies), errors[ver])
        assert seen.latency == Latency.from_values(latencies)
    assert book.take().figures == [], "nothing left to report"


# -- GetStats: node figures where nodes send them, spans elsewhere and per route -----------


def row(region: str, ver: str, requests: int, *, route: str = "", source: str = "spans") -> StatsRow:
    return StatsRow(
        key=StatsKey(region=region, app_name="app", app_version=ver, route=route),
        window_s=60,
        requests=requests,
        errors=0,
        p50_ms=1,
        p95_ms=1,
        p99_ms=1,
        source="nodes" if source == "nodes" else "spans",
    )


def test_node_figures_replace_span_counts_and_spans_fill_in() -> None:
    spans = [row("a", "1.0", 80), row("b", "1.0", 5)]
    nodes = [row("a", "1.0", 100, source="nodes")]
    rows = stats_rows(span_rows=spans, node_rows=nodes, spans_dropped={"b": 3}, by_route=False)
    assert [(r.key.region, r.requests, r.source, r.partial) for r in rows] == [
        ("a", 100, "nodes", False),
        ("b", 5, "spans", True),
    ]
    assert rows[1].partial_reason == "nodes in b dropped 3 spans"


def test_route_rows_say_how_much_of_the_version_their_spans_cover() -> None:
    spans = [row("a", "1.0", 6, route="/x"), row("a", "1.0", 4, route="/y")]
    nodes = [row("a", "1.0", 100, source="nodes")]
    rows = stats_rows(span_rows=spans, node_rows=nodes, spans_dropped={}, by_route=True)
    assert [(r.key.route, r.requests, r.partial) for r in rows] == [
        (ALL_ROUTES, 100, False),
        ("/x", 6, True),
        ("/y", 4, True),
    ]
    assert rows[1].partial_reason == "spans cover 10 of the version's 100 requests (sampled or dropped)"
    complete = stats_rows(
        span_rows=spans, node_rows=[row("a", "1.0", 10, source="nodes")], spans_dropped={}, by_route=True
    )
    assert not any(r.partial for r in complete)
