"""One reading of what the control plane holds, for ``/metrics`` (``metrics.StateFigures``).

Called when Prometheus scrapes, on the event loop: every part read here is changed only
there, so a reading is consistent. A pass over the nodes and the rollouts; nothing kept.
"""

from __future__ import annotations

from collections.abc import Callable

from control_plane.fleet import Fleet
from control_plane.gateways.coordinator import Coordinator
from control_plane.metrics import StateFigures
from control_plane.rollouts.driver import RolloutDriver
from control_plane.traces.collector import Collector


def state_reader(
    *, fleet: Fleet, rollouts: RolloutDriver, collector: Collector, gateways: Coordinator | None
) -> Callable[[], StateFigures]:
    """A function reading the parts given, each time it is called."""

    def read() -> StateFigures:
        census = fleet.census()
        phases: dict[str, int] = {}
        for rollout in rollouts.list_rollouts():
            phases[rollout.state.value] = phases.get(rollout.state.value, 0) + 1
        health = {} if gateways is None else gateways.region_health()
        forwarder = collector.forwarder
        return StateFigures(
            nodes=census.nodes,
            sessions=census.sessions,
            gateways={region: (h.gateways, h.online) for region, h in health.items()},
            deployments=census.deployments,
            deployments_unfinished=census.deployments_unfinished,
            rollouts=phases,
            node_messages=dict(fleet.messages_by_kind),
            node_spans_dropped=dict(fleet.spans_dropped_by_region),
            answer_commits=fleet.answer_commits,
            spans_received=collector.received_spans,
            spans_rejected=collector.rejected_spans,
            spans_stored=collector.store.span_count,
            traces_evicted=collector.store.evicted_traces,
            spans_forwarded=0 if forwarder is None else forwarder.forwarded,
            spans_forward_dropped=0 if forwarder is None else forwarder.dropped,
        )

    return read
