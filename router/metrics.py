"""Prometheus metrics of the router, in a registry of its own (no global state).

What every request updates is a ``runtime.hotmetrics`` family (no lock, no bucket walk);
the rare events use prometheus_client's own types.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from router.policy import Candidate
from runtime.hotmetrics import CounterChild, HotMetrics

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
NO_NODE = "none"


class RouterMetrics:
    """Requests by serving region, node, reason and status; latency; upstream failures; retries;
    what injected WAN faults did, by region; the geo databases' bad records and reloads."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        hot = HotMetrics(self.registry)
        self.requests = hot.counter(
            "router_requests",
            "Requests answered, by serving region, node, routing reason and status.",
            ("region", "node", "reason", "status"),
        )
        self.duration = hot.histogram(
            "router_request_duration_seconds",
            "Time from request to response (WAN emulation included), by serving region.",
            ("region",),
            LATENCY_BUCKETS,
        )
        self.upstream_failures = Counter(
            "router_upstream_failures",
            "Attempts that failed to reach or hear from an edge node, by node and error kind.",
            ("node", "kind"),
            registry=self.registry,
        )
        self.retries = Counter(
            "router_retries", "Requests retried on the next candidate.", registry=self.registry
        )
        self.nodes_routable = Gauge(
            "router_nodes_routable", "Edge nodes that may receive traffic, by region.", ("region",),
            registry=self.registry,
        )  # fmt: skip
        self.wan_fault_requests = Counter(
            "router_wan_fault_requests",
            "Requests that met an injected WAN fault (extra latency or loss) on their way, by region.",
            ("region",),
            registry=self.registry,
        )
        self.wan_loss_failures = Counter(
            "router_wan_loss_failures",
            "Requests failed by emulated packet loss (the client's TCP gave up: 504 wan_loss), by region.",
            ("region",),
            registry=self.registry,
        )
        self.wan_retransmissions = Counter(
            "router_wan_retransmissions",
            "Emulated TCP retransmissions that injected packet loss caused, by region.",
            ("region",),
            registry=self.registry,
        )
        self.geo_bad_records = Counter(
            "router_geo_bad_records",
            "Geo lookups that met an unreadable database record (the client placed nowhere).",
            ("database",),
            registry=self.registry,
        )
        self.geo_reloads = Counter(
            "router_geo_reloads",
            "Geo database files taken up after a change on disk (ok), or refused and kept (failed).",
            ("database", "result"),
            registry=self.registry,
        )
        self._counters: dict[tuple[str, str, str, int], CounterChild] = {}

    def observe(self, chosen: Candidate | None, status: int, seconds: float) -> None:
        region = chosen.node.region if chosen is not None else NO_NODE
        key = (
            (region, chosen.node.node_id, chosen.reason, status)
            if chosen
            else (NO_NODE, NO_NODE, NO_NODE, status)
        )
        counter = self._counters.get(key)
        if counter is None:  # the status as a label string: made once per combination
            counter = self._counters[key] = self.requests.labels(key[0], key[1], key[2], str(status))
        counter.value += 1
        self.duration.labels(region).observe(seconds)

    def upstream_failure(self, node_id: str, kind: str) -> None:
        self.upstream_failures.labels(node_id, kind).inc()

    def retried(self) -> None:
        self.retries.inc()

    def wan_fault(self, region: str, retransmissions: int, *, counted: bool) -> None:
        """One leg of a request met a fault (``counted``: its other leg already counted it)."""
        if not counted:
            self.wan_fault_requests.labels(region).inc()
        if retransmissions:
            self.wan_retransmissions.labels(region).inc(retransmissions)

    def wan_lost(self, region: str) -> None:
        self.wan_loss_failures.labels(region).inc()

    def count_geo_bad_record(self, database: str) -> None:
        self.geo_bad_records.labels(database).inc()

    def count_geo_reload(self, database: str, result: str) -> None:
        self.geo_reloads.labels(database, result).inc()  # from the geo reload thread: Counter locks

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
