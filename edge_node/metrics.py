"""Prometheus metrics of one edge node, in a registry of its own (no global state).

What every request updates is a ``runtime.hotmetrics`` family (no lock, no bucket walk);
module and response cache outcomes use prometheus_client's own types.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from runtime.hotmetrics import CounterChild, HotMetrics

# Buckets from 50 µs to 2.5 s: wasm handlers live in the first few, origin fetches further out.
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class EdgeMetrics:
    """Requests by route and status, handler latency, module cache outcomes, in-flight requests."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        hot = HotMetrics(self.registry)
        self.requests = hot.counter(
            "edge_requests", "Requests served, by matched route and response status.", ("route", "status")
        )
        self.handler_seconds = hot.histogram(
            "edge_handler_duration_seconds",
            "Time spent executing the route's handler (wasm or origin), by route.",
            ("route", "kind"),
            LATENCY_BUCKETS,
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
        self.in_flight = hot.gauge("edge_requests_in_flight", "Requests being served.").labels()
        self.answered_in_callback = hot.counter(
            "edge_requests_answered_in_callback",
            "Requests answered straight from the HTTP parser's callback, with no task (the fast path).",
        ).labels()
        self._request_counters: dict[tuple[str, int], CounterChild] = {}

    def count_request(self, route: str, status: int) -> None:
        key = (route, status)
        counter = self._request_counters.get(key)
        if counter is None:  # the status as a label string: made once per pair
            counter = self._request_counters[key] = self.requests.labels(route, str(status))
        counter.value += 1

    def observe_handler(self, route: str, kind: str, seconds: float) -> None:
        self.handler_seconds.labels(route, kind).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
