"""The pure parts of collection: rolling statistics and the store's indexes and eviction."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1 import trace_pb2

from control_plane.traces.records import ResourceInfo, SpanRecord
from control_plane.traces.stats import RollingStats
from control_plane.traces.store import TraceEntry, TraceFilter, TraceStore

S = 1_000_000_000
EDGE = ResourceInfo(service="edge-node", region="eu-west-1", app_name="", app_version="", attributes=())
ROUTER = ResourceInfo(service="router", region="", app_name="", app_version="", attributes=())


def span(
    n: int,
    *,
    end_s: float,
    duration_ms: float,
    status: int = 200,
    version: str = "1.0",
    route: str = "/a",
    resource: ResourceInfo = EDGE,
    kind: int = trace_pb2.Span.SPAN_KIND_SERVER,
    trace: int | None = None,
    parent: bytes = b"",
) -> SpanRecord:
    end_ns = int(end_s * S)
    message = trace_pb2.Span(
        trace_id=(trace or n).to_bytes(16, "big"),
        span_id=n.to_bytes(8, "big"),
        parent_span_id=parent,
        name="GET",
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=end_ns - int(duration_ms * 1e6),
        end_time_unix_nano=end_ns,
    )
    for key, value in (("http.route", route), ("edgecdn.app.name", "app"), ("edgecdn.app.version", version)):
        message.attributes.add(key=key).value.string_value = value
    message.attributes.add(key="http.response.status_code").value.int_value = status
    return SpanRecord(message, resource)


def test_statistics_of_a_known_mix() -> None:
    stats = RollingStats(bucket_s=1, max_window_s=60)
    spans = [span(n, end_s=100.5, duration_ms=n) for n in range(1, 101)]  # 1..100 ms
    spans += [span(200 + n, end_s=100.5, duration_ms=5, status=500) for n in range(10)]
    spans += [span(300, end_s=100.5, duration_ms=5, version="2.0")]
    spans += [span(400, end_s=100.5, duration_ms=5, kind=trace_pb2.Span.SPAN_KIND_INTERNAL)]
    spans += [span(500, end_s=100.5, duration_ms=5, version="")]  # not an app request
    assert stats.add(spans, now_ns=101 * S) == 111
    v1, v2 = stats.query(window_s=10, now_ns=101 * S, by_route=False)
    assert (v1.key.region, v1.key.app_version, v1.key.route) == ("eu-west-1", "1.0", "")
    assert (v1.requests, v1.errors) == (110, 10)
    assert abs(v1.error_rate - 10 / 110) < 1e-9
    assert abs(v1.requests_per_second - 11.0) < 1e-9
    # 110 samples: ten at 5 ms plus 1..100 ms; HDR keeps 1% precision.
    assert 44 <= v1.p50_ms <= 47
    assert 94 <= v1.p95_ms <= 96.5
    assert 98 <= v1.p99_ms <= 100.5
    assert (v2.key.app_version, v2.requests) == ("2.0", 1)


def test_windows_slide_and_old_buckets_go() -> None:
    stats = RollingStats(bucket_s=1, max_window_s=30)
    stats.add([span(1, end_s=10.2, duration_ms=1)], now_ns=11 * S)
    stats.add([span(2, end_s=20.2, duration_ms=1)], now_ns=21 * S)
    assert [r.requests for r in stats.query(window_s=5, now_ns=21 * S)] == [1]
    assert [r.requests for r in stats.query(window_s=30, now_ns=21 * S)] == [2]
    assert stats.query(window_s=30, now_ns=100 * S) == []
    assert stats.add([span(3, end_s=10.0, duration_ms=1)], now_ns=100 * S) == 0  # too old to count


def ids(found: list[TraceEntry]) -> list[int]:
    return [int.from_bytes(e.trace_id, "big") for e in found]


def test_store_indexes_and_eviction() -> None:
    store = TraceStore(max_spans=4, retention_s=100)
    store.add(
        [span(1, end_s=1, duration_ms=1, trace=1), span(2, end_s=1, duration_ms=1, trace=1, status=503)],
        1 * S,
    )
    store.add([span(3, end_s=2, duration_ms=1, trace=2, resource=ROUTER)], 2 * S)
    store.add([span(4, end_s=3, duration_ms=1, trace=3, version="2.0")], 3 * S)
    assert len(store) == 3
    assert ids(store.find(TraceFilter(errors_only=True))) == [1]
    assert ids(store.find(TraceFilter(service="router"))) == [2]
    assert ids(store.find(TraceFilter(app_version="2.0"))) == [3]
    assert ids(store.find(TraceFilter(region="eu-west-1"))) == [3, 1]
    assert ids(store.find(TraceFilter(since_ns=int(1.5 * S)))) == [3, 2]
    store.add([span(5, end_s=4, duration_ms=1, trace=4)], 4 * S)  # 5 spans > 4: trace 1 goes
    assert ids(store.find(TraceFilter())) == [4, 3, 2]
    assert store.find(TraceFilter(errors_only=True)) == []
    store.evict(now_ns=int(103.5 * S))  # retention: arrived at 2 s and 3 s are older than 100 s
    assert ids(store.find(TraceFilter())) == [4]


@given(
    st.lists(
        st.tuples(st.integers(1, 12), st.sampled_from(["a", "b"]), st.booleans(), st.integers(0, 3)),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 20),
    st.integers(0, 60),
)
def test_store_matches_a_plain_model(
    events: list[tuple[int, str, bool, int]], budget: int, since: int
) -> None:
    """Whatever arrives, the store holds the newest whole traces within its span budget,
    and every filter answers what a linear scan of those traces would."""
    store = TraceStore(max_spans=budget, retention_s=1e6)
    model: dict[int, list[tuple[str, bool, int]]] = {}
    for step, (trace, service, failed, gap) in enumerate(events):
        now = (step + 1 + gap) * S  # a span arrives after it ends
        resource = ResourceInfo(service=service, region="r", app_name="", app_version="", attributes=())
        record = span(1000 + step, end_s=step + 1, duration_ms=1, trace=trace, resource=resource)
        record.error = failed
        store.add([record], now)
        model.setdefault(trace, []).append((service, failed, step))
        while sum(len(v) for v in model.values()) > budget:
            del model[next(iter(model))]
    assert store.span_count == sum(len(v) for v in model.values())
    newest_first = list(reversed(model))
    assert ids(store.find(TraceFilter(limit=1000))) == newest_first
    for service in ("a", "b"):
        expected = [t for t in newest_first if any(s == service for s, _, _ in model[t])]
        assert ids(store.find(TraceFilter(service=service, limit=1000))) == expected
    failed_traces = [t for t in newest_first if any(f for _, f, _ in model[t])]
    assert ids(store.find(TraceFilter(errors_only=True, limit=1000))) == failed_traces
    assert ids(store.find(TraceFilter(limit=2))) == newest_first[:2]
    starts = {t: min(step for _, _, step in spans) + 0.999 for t, spans in model.items()}
    recent = [t for t in newest_first if starts[t] >= since]
    assert ids(store.find(TraceFilter(since_ns=since * S, limit=1000))) == recent
    recent_a = [t for t in recent if any(s == "a" for s, _, _ in model[t])]
    assert ids(store.find(TraceFilter(service="a", since_ns=since * S, limit=1000))) == recent_a
