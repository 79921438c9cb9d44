"""The control plane's Prometheus figures, in a registry of its own (no global state).

Two kinds. What happens on every call (RPCs by method and status code, their duration) is
counted as it happens in ``runtime.hotmetrics`` families: plain numbers changed on the
event-loop thread, no lock. What the control plane *holds* (node sessions by region,
gateways online, deployments, rollouts by phase, spans taken in and dropped) is read from
the live state only when Prometheus scrapes: ``StateFigures`` is one such reading, and
``state_metrics`` turns it into metric families (pure, tested directly). Nothing is
updated twice, and a scrape costs one pass over the nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from control_plane.rollouts.model import RolloutState
from runtime.hotmetrics import HotMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Unary calls only: a node session or a watch lives for hours, and its length says nothing.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Calls to a method the server does not have are counted under this name, not theirs:
# a caller must not be able to add a series per name it tries.
UNKNOWN_METHOD = "unknown"
NODE_STATUSES = ("ready", "unreachable", "disconnected")


@dataclass(frozen=True, slots=True, kw_only=True)
class StateFigures:
    """What the control plane holds at one moment.

    ``nodes`` counts known nodes by (region, status), status one of ``NODE_STATUSES``;
    ``sessions`` open node sessions by region; ``gateways`` (known, online) by region;
    ``node_messages`` what nodes sent on their sessions, by kind, since the start;
    ``node_spans_dropped`` the spans nodes reported they could not export, by region,
    since the start; ``answer_commits`` the group commits of ACKs and NACKs since the start;
    ``spans_*`` and ``traces_evicted`` the trace store's ingest.
    """

    nodes: Mapping[tuple[str, str], int] = field(default_factory=dict)
    sessions: Mapping[str, int] = field(default_factory=dict)
    gateways: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    deployments: int = 0
    deployments_unfinished: int = 0
    rollouts: Mapping[str, int] = field(default_factory=dict)
    node_messages: Mapping[str, int] = field(default_factory=dict)
    node_spans_dropped: Mapping[str, int] = field(default_factory=dict)
    answer_commits: int = 0
    spans_received: int = 0
    spans_rejected: int = 0
    spans_stored: int = 0
    traces_evicted: int = 0
    spans_forwarded: int = 0
    spans_forward_dropped: int = 0


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _labelled(family: GaugeMetricFamily | CounterMetricFamily, rows: Mapping[Any, float]) -> Metric:
    """``family`` with one sample per row; a row's key is its label value, or a tuple of them."""
    for labels, value in sorted(rows.items()):
        family.add_metric(list(labels) if isinstance(labels, tuple) else [labels], value)
    return family


def state_metrics(figures: StateFigures) -> list[Metric]:
    """The families of one reading; every rollout phase and node status is present (0 when
    none), so a dashboard's series do not appear and vanish."""
    regions = {region for region, _ in figures.nodes} | set(figures.sessions)
    node_counts = {(region, status): 0 for region in regions for status in NODE_STATUSES}
    node_counts.update(figures.nodes)
    phases = {state.value: 0 for state in RolloutState}
    phases.update(figures.rollouts)
    return [
        _labelled(
            GaugeMetricFamily(
                "control_plane_nodes", "Known edge nodes, by region and status.", labels=("region", "status")
            ),
            node_counts,
        ),
        _labelled(
            GaugeMetricFamily(
                "control_plane_node_sessions", "Open node sessions (streams), by region.", labels=("region",)
            ),
            figures.sessions,
        ),
        _labelled(
            CounterMetricFamily(
                "control_plane_node_messages",
                "Messages nodes sent on their sessions (heartbeat, ack, nack, ...), by kind.",
                labels=("kind",),
            ),
            figures.node_messages,
        ),
        _labelled(
            GaugeMetricFamily("control_plane_gateways", "Known IoT gateways, by region.", labels=("region",)),
            {region: known for region, (known, _) in figures.gateways.items()},
        ),
        _labelled(
            GaugeMetricFamily(
                "control_plane_gateways_online", "IoT gateways online, by region.", labels=("region",)
            ),
            {region: online for region, (_, online) in figures.gateways.items()},
        ),
        _counter(
            "control_plane_answer_commits",
            "SQLite transactions that stored node ACKs and NACKs (group commits: several each).",
            figures.answer_commits,
        ),
        _gauge("control_plane_deployments", "Deployments the control plane holds.", figures.deployments),
        _gauge(
            "control_plane_deployments_unfinished",
            "Deployments with a targeted node that has neither ACKed nor NACKed yet.",
            figures.deployments_unfinished,
        ),
        _labelled(
            GaugeMetricFamily("control_plane_rollouts", "Rollouts, by phase.", labels=("phase",)), phases
        ),
        *_span_metrics(figures),
    ]


def _span_metrics(figures: StateFigures) -> list[Metric]:
    return [
        _counter(
            "control_plane_spans_received",
            "Spans taken in (OTLP Export and its own).",
            figures.spans_received,
        ),
        _counter(
            "control_plane_spans_rejected",
            "Spans dropped at ingest (malformed trace or span ids).",
            figures.spans_rejected,
        ),
        _gauge("control_plane_spans_stored", "Spans the trace store holds now.", figures.spans_stored),
        _counter(
            "control_plane_traces_evicted",
            "Whole traces the bounded store evicted (size or retention).",
            figures.traces_evicted,
        ),
        _counter(
            "control_plane_otlp_forwarded_requests",
            "Export requests passed on to --otlp-forward.",
            figures.spans_forwarded,
        ),
        _counter(
            "control_plane_otlp_forward_dropped_requests",
            "Export requests not passed on to --otlp-forward (its queue was full or it refused).",
            figures.spans_forward_dropped,
        ),
        _labelled(
            CounterMetricFamily(
                "control_plane_node_spans_dropped",
                "Spans edge nodes reported (in heartbeats) they could not export, by region.",
                labels=("region",),
            ),
            figures.node_spans_dropped,
        ),
    ]


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], StateFigures]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        yield from state_metrics(self._read())


class ControlPlaneMetrics:
    """RPCs started by method, and finished by method and code (counted by
    ``control_plane.interceptor.MetricsInterceptor``),
    the state read at scrape time (``watch``), and the process's own CPU and memory."""

    content_type = CONTENT_TYPE

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        hot = HotMetrics(self.registry)
        self.rpcs_started = hot.counter(
            "control_plane_rpcs_started", "RPCs started, by full method name (streams count here at once).",
            ("method",),
        )  # fmt: skip
        self.rpcs = hot.counter(
            "control_plane_rpcs",
            "RPCs finished, by full method name and gRPC status code.",
            ("method", "code"),
        )
        self.rpc_duration = hot.histogram(
            "control_plane_rpc_duration_seconds",
            "Time to answer a unary RPC, by full method name.",
            ("method",),
            RPC_BUCKETS,
        )

    def started(self, method: str) -> None:
        self.rpcs_started.labels(method).inc()

    def finished(self, method: str, code: str, seconds: float | None) -> None:
        """One RPC ended with ``code``; ``seconds`` for unary calls (None for streams)."""
        self.rpcs.labels(method, code).inc()
        if seconds is not None:
            self.rpc_duration.labels(method).observe(seconds)

    def watch(self, read: Callable[[], StateFigures]) -> None:
        """Have every scrape include ``read()`` (called on the scraping thread: the event loop's)."""
        self.registry.register(_StateCollector(read))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
