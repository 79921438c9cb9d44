"""Prometheus metrics of one edge node, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Buckets from 50 µs to 2.5 s: wasm handlers live in the first few, origin fetches further out.
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class EdgeMetrics:
    """Requests by route and status, handler latency, module cache outcomes, in-flight requests."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "edge_requests",
            "Requests served, by matched route and response status.",
            ("route", "status"),
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "edge_handler_duration_seconds",
            "Time spent executing the route's handler (wasm or origin), by route.",
            ("route", "kind"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.module_cache = Counter(
            "edge_module_cache",
            "Module loads by where the compiled code came from: disk (AOT cache hit), memory, compiled.",
            ("result",),
            registry=self.registry,
        )
        self.response_cache = Counter(
            "edge_response_cache",
            "HTTP cache lookups for origin routes, by outcome.",
            ("result",),
            registry=self.registry,
        )
        self.in_flight = Gauge("edge_requests_in_flight", "Requests being served.", registry=self.registry)
        self._request_counters: dict[tuple[str, int], Counter] = {}
        self._handler_histograms: dict[tuple[str, str], Histogram] = {}

    def count_request(self, route: str, status: int) -> None:
        key = (route, status)
        counter = self._request_counters.get(key)
        if counter is None:  # labels() takes a lock and builds a key; do that once per pair
            counter = self._request_counters[key] = self.requests.labels(route, str(status))
        counter.inc()

    def observe_handler(self, route: str, kind: str, seconds: float) -> None:
        key = (route, kind)
        histogram = self._handler_histograms.get(key)
        if histogram is None:
            histogram = self._handler_histograms[key] = self.handler_seconds.labels(route, kind)
        histogram.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
