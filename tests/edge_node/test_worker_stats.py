"""Summing an edge node's workers (edge_node.worker_stats): pure, no processes."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from edge_node.figures import FiguresBook, encode_counts
from edge_node.metrics import LATENCY_BUCKET_COUNT
from edge_node.worker_stats import MergedCollector, SampleBook, add_heartbeat, sample_rows, sum_rows
from protos.edgecdn.v1 import common_pb2, nodes_pb2


def registry_with(requests: float, in_flight: float, route: str = "/a") -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("edge_requests", "Requests.", ("route",), registry=registry).labels(route).inc(requests)
    Gauge("edge_in_flight", "In flight.", registry=registry).set(in_flight)
    return registry


def value(rows: list[list[Any]], name: str, **labels: str) -> float:
    return sum(float(row[5]) for row in rows if row[3] == name and row[4] == labels)


def test_a_dead_workers_counters_are_kept_and_its_gauges_dropped() -> None:
    book = SampleBook()
    book.update(0, sample_rows(registry_with(5, 2)))
    book.update(1, sample_rows(registry_with(7, 3)))
    assert value(book.others(0), "edge_requests_total", route="/a") == 7
    book.retire(1)
    others = book.others(0)
    assert value(others, "edge_requests_total", route="/a") == 7  # retired, still counted
    assert value(others, "edge_in_flight") == 0  # a dead worker has nothing in flight
    book.update(1, sample_rows(registry_with(1, 1)))  # restarted from zero
    assert value(book.others(0), "edge_requests_total", route="/a") == 8


def test_the_merged_exposition_adds_samples_and_families_only_others_have() -> None:
    own = registry_with(2, 1, route="/a")
    others = sample_rows(registry_with(3, 4, route="/b")) + sample_rows(registry_with(5, 0, route="/a"))
    text = generate_latest(MergedCollector(own, others)).decode()
    assert 'edge_requests_total{route="/a"} 7.0' in text
    assert 'edge_requests_total{route="/b"} 3.0' in text
    assert "edge_in_flight 5.0" in text
    assert text.count("# TYPE edge_requests_total counter") == 1


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 50)), min_size=1, max_size=6))
def test_each_worker_shows_the_whole_nodes_sum(counts: list[tuple[int, int]]) -> None:
    book = SampleBook()
    registries = [registry_with(requests, in_flight) for requests, in_flight in counts]
    for index, registry in enumerate(registries):
        book.update(index, sample_rows(registry))
    total = sum_rows(sample_rows(registry) for registry in registries)
    for index, registry in enumerate(registries):
        shown = sum_rows([sample_rows(MergedCollector(registry, book.others(index)))])
        assert shown == total


def heartbeat(requests: int, errors: int, bucket: int, dropped: int) -> nodes_pb2.Heartbeat:
    latency = [0] * LATENCY_BUCKET_COUNT
    latency[bucket] = requests
    return nodes_pb2.Heartbeat(
        figures=[
            nodes_pb2.AppVersionFigures(
                app_name="a",
                app_version="1",
                requests=requests,
                errors_5xx=errors,
                latency=common_pb2.LatencyHistogram(counts=encode_counts(latency)),
            )
        ],
        spans_dropped=dropped,
    )


def test_workers_heartbeats_add_up_in_the_nodes_book() -> None:
    book = FiguresBook()
    dropped = add_heartbeat(book, heartbeat(3, 1, 10, 2)) + add_heartbeat(book, heartbeat(4, 0, 20, 1))
    cell = book.cell("a", "1")
    assert (cell.requests, cell.errors, cell.latency[10], cell.latency[20], dropped) == (7, 1, 3, 4, 3)
    (sent,) = book.take().figures
    assert (sent.requests, sent.errors_5xx) == (7, 1)
