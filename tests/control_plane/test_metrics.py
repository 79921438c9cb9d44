"""The control plane's Prometheus figures as rendered: pure readings in, exposition out."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from control_plane.metrics import NODE_STATUSES, ControlPlaneMetrics, StateFigures, state_metrics
from control_plane.metrics_http import answer
from control_plane.rollouts.model import RolloutState

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12)
counts = st.integers(min_value=0, max_value=10**6)


class Reading(Collector):
    def __init__(self, figures: StateFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        yield from state_metrics(self.figures)


def samples(figures: StateFigures) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(Reading(figures))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@given(
    sessions=st.dictionaries(names, counts, max_size=5),
    nodes=st.dictionaries(st.tuples(names, st.sampled_from(NODE_STATUSES)), counts, max_size=8),
    rollouts=st.dictionaries(st.sampled_from([s.value for s in RolloutState]), counts),
    gateways=st.dictionaries(names, st.tuples(counts, counts), max_size=4),
    deployments=counts,
    spans=counts,
    commits=counts,
)
def test_every_figure_is_rendered_with_its_labels(
    sessions: dict[str, int],
    nodes: dict[tuple[str, str], int],
    rollouts: dict[str, int],
    gateways: dict[str, tuple[int, int]],
    deployments: int,
    spans: int,
    commits: int,
) -> None:
    figures = StateFigures(
        sessions=sessions,
        nodes=nodes,
        rollouts=rollouts,
        gateways=gateways,
        deployments=deployments,
        spans_received=spans,
        answer_commits=commits,
    )
    found = samples(figures)
    for region, count in sessions.items():
        assert found[("control_plane_node_sessions", (("region", region),))] == count
    for (region, status), count in nodes.items():
        assert found[("control_plane_nodes", (("region", region), ("status", status)))] == count
    # Every phase is a series, zero when no rollout is in it, so dashboards keep their lines.
    for phase in RolloutState:
        assert found[("control_plane_rollouts", (("phase", phase.value),))] == rollouts.get(phase.value, 0)
    for region, (known, online) in gateways.items():
        assert found[("control_plane_gateways", (("region", region),))] == known
        assert found[("control_plane_gateways_online", (("region", region),))] == online
    assert found[("control_plane_deployments", ())] == deployments
    assert found[("control_plane_spans_received_total", ())] == spans
    assert found[("control_plane_answer_commits_total", ())] == commits


def test_a_region_with_sessions_gets_every_status_series() -> None:
    found = samples(StateFigures(sessions={"eu": 2}, nodes={("eu", "ready"): 2}))
    assert found[("control_plane_nodes", (("region", "eu"), ("status", "unreachable")))] == 0
    assert found[("control_plane_nodes", (("region", "eu"), ("status", "disconnected")))] == 0


def test_rpcs_are_counted_by_method_and_code_and_unary_ones_timed() -> None:
    metrics = ControlPlaneMetrics()
    metrics.finished("/edgecdn.v1.NodeService/ListNodes", "OK", 0.003)
    metrics.finished("/edgecdn.v1.NodeService/ListNodes", "OK", 0.004)
    metrics.finished("/edgecdn.v1.NodeService/ListNodes", "UNAUTHENTICATED", 0.001)
    metrics.finished("/edgecdn.v1.NodeSessionService/Connect", "CANCELLED", None)
    text = metrics.exposition().decode()
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    list_nodes = "/edgecdn.v1.NodeService/ListNodes"
    assert found[("control_plane_rpcs_total", (("code", "OK"), ("method", list_nodes)))] == 2
    assert found[("control_plane_rpcs_total", (("code", "UNAUTHENTICATED"), ("method", list_nodes)))] == 1
    assert found[("control_plane_rpc_duration_seconds_count", (("method", list_nodes),))] == 3
    connect = "/edgecdn.v1.NodeSessionService/Connect"
    assert found[("control_plane_rpcs_total", (("code", "CANCELLED"), ("method", connect)))] == 1
    # A stream's length says nothing: it is not timed.
    assert ("control_plane_rpc_duration_seconds_count", (("method", connect),)) not in found
    assert ("process_resident_memory_bytes", ()) in found


def test_the_http_answers() -> None:
    metrics = ControlPlaneMetrics()
    status, content_type, body = answer(metrics, "GET", "/metrics")
    assert (status, content_type) == (200, b"text/plain; version=0.0.4; charset=utf-8")
    assert b"process_cpu_seconds_total" in body
    assert answer(metrics, "HEAD", "/healthz")[0] == 200
    status, _, body = answer(metrics, "POST", "/metrics")
    assert status == 405
    assert b"use GET or HEAD" in body
    status, _, body = answer(metrics, "GET", "/other")
    assert status == 404
    assert b"/metrics or /healthz" in body
