"""The rollout gates' figures: what the nodes themselves counted, from their heartbeats.

Nodes send, with every heartbeat, exact per app-version request and 5xx counts and a
latency histogram (control_plane.traces.figures); spans are sampled and may be dropped, so
gates never read them. Times are wall-clock seconds, as the fleet records heartbeats.
"""

from __future__ import annotations

from collections.abc import Collection

from control_plane.rollouts.gates import Figures
from control_plane.traces.figures import NodeFigures

NS = 1_000_000_000


class HeartbeatFigures:
    """A ``FiguresSource`` over the fleet's heartbeat figures."""

    def __init__(self, figures: NodeFigures) -> None:
        self._figures = figures

    def figures(
        self, *, regions: Collection[str], app: str, version: str, since: float, until: float
    ) -> Figures:
        if not regions:  # the heartbeat store reads "no regions" as "every region"
            return Figures()
        found = self._figures.version_figures(
            regions=regions,
            app_name=app,
            app_version=version,
            since_ns=int(since * NS),
            now_ns=int(until * NS),
        )
        return Figures(requests=found.requests, errors=found.errors, p99_ms=found.p99_ms)
