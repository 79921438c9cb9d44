"""Prometheus metrics of one edge node, in a registry of its own (no global state), and the
exact per app version figures its heartbeats carry.

What every request updates is a ``runtime.hotmetrics`` family (no lock, no bucket walk)
or an ``AppFigures`` (a few integer increments); module and response cache outcomes use
prometheus_client's own types.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from runtime.hotmetrics import CounterChild, HotMetrics

# The latency layout of heartbeat figures (LATENCY_LAYOUT_LOG_LINEAR_US_2SF in
# protos/edgecdn/v1/common.proto): HdrHistogram's with 2 significant figures, integer µs.
SUB_BUCKET_BITS = 8
HALF_SUB_BUCKETS = 1 << (SUB_BUCKET_BITS - 1)
HIGHEST_US = 60_000_000  # a minute; slower answers are counted as a minute
SERVER_ERROR = 500


def latency_bucket(micros: int) -> int:
    """The layout's bucket of a latency in microseconds: exact below 256 µs, then 128
    linear sub-buckets per power of two (at most 0.78% of a value wide)."""
    value = min(HIGHEST_US, micros)
    if value < 2 * HALF_SUB_BUCKETS:
        return max(0, value)
    shift = value.bit_length() - SUB_BUCKET_BITS
    return HALF_SUB_BUCKETS * shift + (value >> shift)


LATENCY_BUCKET_COUNT = latency_bucket(HIGHEST_US) + 1


class AppFigures:
    """What one app version answered on this node since the node started: requests, 5xx
    answers and a latency histogram. Plain numbers changed on the event-loop thread only,
    as in ``runtime.hotmetrics``; heartbeats report differences (``edge_node.figures``)."""

    __slots__ = ("app_name", "app_version", "errors", "latency", "requests")

    def __init__(self, app_name: str, app_version: str) -> None:
        self.app_name = app_name
        self.app_version = app_version
        self.requests = 0
        self.errors = 0
        self.latency = [0] * LATENCY_BUCKET_COUNT

    def record(self, status: int, micros: int) -> None:
        self.requests += 1
        if status >= SERVER_ERROR:
            self.errors += 1
        self.latency[latency_bucket(micros)] += 1


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
        # Per country as well as per node (every node is one region): the load report's
        # and edgectl's hit ratios per region and country come from here.
        self.response_cache = hot.counter(
            "edge_cache_results",
            "HTTP cache outcomes (x-cache: HIT, MISS, STALE, REVALIDATED, BYPASS), by client country.",
            ("result", "country"),
        )
        # Geo database trouble at run time (geo.lookup): rare events, so prometheus_client's own.
        self.geo_bad_records = Counter(
            "edge_geo_bad_records",
            "Geo lookups that met an unreadable database record (answered as an unknown location).",
            ("database",),
            registry=self.registry,
        )
        self.geo_reloads = Counter(
            "edge_geo_reloads",
            "Geo database files taken up after a change on disk (ok), or refused and kept (failed).",
            ("database", "result"),
            registry=self.registry,
        )
        self.in_flight = hot.gauge("edge_requests_in_flight", "Requests being served.").labels()
        self.answered_in_callback = hot.counter(
            "edge_requests_answered_in_callback",
            "Requests answered straight from the HTTP parser's callback, with no task (the fast path).",
        ).labels()
        self._request_counters: dict[tuple[str, int], CounterChild] = {}
        self._cache_counters: dict[tuple[str, str | None], CounterChild] = {}

    def count_request(self, route: str, status: int) -> None:
        key = (route, status)
        counter = self._request_counters.get(key)
        if counter is None:  # the status as a label string: made once per pair
            counter = self._request_counters[key] = self.requests.labels(route, str(status))
        counter.value += 1

    def count_cache(self, result: str | None, country: str | None) -> None:
        if result is None:
            return
        key = (result, country)
        counter = self._cache_counters.get(key)
        if counter is None:
            counter = self._cache_counters[key] = self.response_cache.labels(result, country or "unknown")
        counter.value += 1

    def count_geo_bad_record(self, database: str) -> None:
        self.geo_bad_records.labels(database).inc()

    def count_geo_reload(self, database: str, result: str) -> None:
        self.geo_reloads.labels(database, result).inc()  # from the geo reload thread: Counter locks

    def observe_handler(self, route: str, kind: str, seconds: float) -> None:
        self.handler_seconds.labels(route, kind).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
