"""The node's exact figures per app version, as heartbeats carry them: the counters every
answer updates (``edge_node.metrics.AppFigures``, one per app version the node has served)
and what has been reported of them.

``take`` makes the figures of the next heartbeat: for each version, what it answered since
the last heartbeat that went out (requests, 5xx, the latency histogram's difference,
zero runs encoded as HdrHistogram's V2 does), and the spans the trace exporter dropped
meanwhile. A heartbeat that could not be written is ``give_back``: its differences go into
the next one, so a broken stream loses nothing. The same counters are on ``/metrics`` as
``edge_app_requests_total`` and ``edge_app_server_errors_total`` by app and version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_node.metrics import LATENCY_BUCKET_COUNT, AppFigures
from protos.edgecdn.v1 import common_pb2, nodes_pb2

AppVersion = tuple[str, str]


class _Reported:
    """What heartbeats have carried of one version's counters so far."""

    __slots__ = ("errors", "latency", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency = [0] * LATENCY_BUCKET_COUNT


def encode_counts(counts: list[int]) -> list[int]:
    """Bucket counts as the wire has them: positive counts, negative runs of empty buckets,
    nothing after the last non-empty bucket."""
    encoded: list[int] = []
    empty = 0
    for count in counts:
        if count == 0:
            empty += 1
            continue
        if empty:
            encoded.append(-empty)
            empty = 0
        encoded.append(count)
    return encoded


def decode_counts(encoded: list[int]) -> list[int]:
    """The inverse of ``encode_counts``, padded to the layout's length."""
    counts = [0] * LATENCY_BUCKET_COUNT
    index = 0
    for value in encoded:
        if value < 0:
            index -= value
        else:
            counts[index] = value
            index += 1
    return counts


class FiguresBook:
    """Every app version's counters on this node, and what heartbeats have reported of them.

    ``spans_dropped``: the trace exporter's count of dropped spans since start (0 when
    tracing is off). Used from the event-loop thread only, as the counters are.
    """

    def __init__(self, *, spans_dropped: Callable[[], int] = lambda: 0) -> None:
        self._figures: dict[AppVersion, AppFigures] = {}
        self._reported: dict[AppVersion, _Reported] = {}
        self._spans_dropped = spans_dropped
        self._dropped_reported = 0

    def cell(self, app_name: str, app_version: str) -> AppFigures:
        """The counters of ``app_name@app_version`` (the same object each time, so a version
        swapped out and back in keeps counting where it was)."""
        key = (app_name, app_version)
        figures = self._figures.get(key)
        if figures is None:
            figures = self._figures[key] = AppFigures(app_name, app_version)
            self._reported[key] = _Reported()
        return figures

    def versions(self) -> list[AppFigures]:
        return list(self._figures.values())

    def take(self) -> nodes_pb2.Heartbeat:
        """A heartbeat carrying everything not yet reported (counted as reported from now)."""
        heartbeat = nodes_pb2.Heartbeat()
        for key, figures in self._figures.items():
            reported = self._reported[key]
            requests = figures.requests - reported.requests
            if requests == 0:
                continue
            current = list(figures.latency)
            difference = [now - before for now, before in zip(current, reported.latency, strict=True)]
            heartbeat.figures.append(
                nodes_pb2.AppVersionFigures(
                    app_name=figures.app_name,
                    app_version=figures.app_version,
                    requests=requests,
                    errors_5xx=figures.errors - reported.errors,
                    latency=common_pb2.LatencyHistogram(
                        layout=common_pb2.LATENCY_LAYOUT_LOG_LINEAR_US_2SF, counts=encode_counts(difference)
                    ),
                )
            )
            reported.requests = figures.requests
            reported.errors = figures.errors
            reported.latency = current
        dropped = self._spans_dropped()
        heartbeat.spans_dropped = max(0, dropped - self._dropped_reported)
        self._dropped_reported = dropped
        return heartbeat

    def give_back(self, heartbeat: nodes_pb2.Heartbeat) -> None:
        """``heartbeat`` never went out: report its figures again with the next one."""
        for sent in heartbeat.figures:
            reported = self._reported.get((sent.app_name, sent.app_version))
            if reported is None:
                continue
            reported.requests -= sent.requests
            reported.errors -= sent.errors_5xx
            difference = decode_counts(list(sent.latency.counts))
            reported.latency = [before - d for before, d in zip(reported.latency, difference, strict=True)]
        self._dropped_reported -= heartbeat.spans_dropped


class AppFiguresCollector(Collector):
    """``/metrics`` families of the book's counters: answers and 5xx per app version."""

    def __init__(self, book: FiguresBook, registry: CollectorRegistry) -> None:
        self._book = book
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "edge_app_requests",
            "Answers per app version (every status; what heartbeats report to the control plane).",
            labels=("app", "version"),
        )
        errors = CounterMetricFamily(
            "edge_app_server_errors", "Answers with a 5xx status per app version.", labels=("app", "version")
        )
        for figures in self._book.versions():
            labels = (figures.app_name, figures.app_version)
            requests.add_metric(labels, figures.requests)
            errors.add_metric(labels, figures.errors)
        yield requests
        yield errors
