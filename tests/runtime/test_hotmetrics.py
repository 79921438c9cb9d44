"""Hot-path metrics expose exactly what prometheus_client's own types would (minus _created)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from runtime.hotmetrics import HotMetrics

BUCKETS = (0.00005, 0.0005, 0.001, 0.0025, 0.5, 1.0, 2.5)


def exposition(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


@given(
    observations=st.lists(
        st.tuples(
            st.sampled_from(["/a", "/b"]),
            st.sampled_from([200, 404, 500]),
            st.floats(min_value=0, max_value=5, allow_nan=False) | st.sampled_from(BUCKETS),
        ),
        max_size=40,
    )
)
def test_same_exposition_as_prometheus_client(observations: list[tuple[str, int, float]]) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    requests = Counter("requests", "Requests.", ("route", "status"), registry=theirs)
    seconds = Histogram("seconds", "Seconds.", ("route",), buckets=BUCKETS, registry=theirs)
    in_flight = Gauge("in_flight", "In flight.", registry=theirs)
    hot = HotMetrics(ours)
    hot_requests = hot.counter("requests", "Requests.", ("route", "status"))
    hot_seconds = hot.histogram("seconds", "Seconds.", ("route",), BUCKETS)
    hot_in_flight = hot.gauge("in_flight", "In flight.").labels()
    for route, status, value in observations:
        requests.labels(route, str(status)).inc()
        hot_requests.labels(route, str(status)).inc()
        seconds.labels(route).observe(value)
        hot_seconds.labels(route).observe(value)
        in_flight.inc()
        hot_in_flight.inc()
        if status == 500:
            in_flight.dec()
            hot_in_flight.dec()
    assert exposition(ours) == exposition(theirs)


def test_wrong_label_count_is_refused() -> None:
    counter = HotMetrics(CollectorRegistry()).counter("requests", "Requests.", ("route",))
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("/a", "extra")
