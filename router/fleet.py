"""The router's live view of the edge fleet: inventory + health + load, as policy inputs.

``Fleet.views()`` is called once per request, so it is cached: the tuple of
:class:`~router.policy.NodeView` is rebuilt only when the inventory or a node's health
changes, when an ejection runs out, or every ``LOAD_REFRESH_S`` for utilization.
Utilization is the larger of what a node reports (heartbeats through the control plane)
and what this router sends it (its request rate over its capacity).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from router.health import HealthBook
from router.inventory import EdgeEntry, Inventory
from router.policy import NodeView

LOAD_REFRESH_S = 0.25
RATE_WINDOW_S = 1.0


@dataclass(slots=True)
class NodeTraffic:
    """What this router sends one node: in flight now, and a one-second rate."""

    in_flight: int = 0
    requests_total: int = 0
    window_start: float = 0.0
    window_count: int = 0
    last_rate: float = 0.0

    def started(self, now: float) -> None:
        self.in_flight += 1
        self.requests_total += 1
        if now - self.window_start >= RATE_WINDOW_S:
            elapsed = now - self.window_start
            self.last_rate = self.window_count / elapsed if elapsed < 2 * RATE_WINDOW_S else 0.0
            self.window_start = now
            self.window_count = 0
        self.window_count += 1

    def rate(self, now: float) -> float:
        elapsed = now - self.window_start
        return self.last_rate if elapsed < 2 * RATE_WINDOW_S else 0.0


class Fleet:
    """Inventory, health records and traffic of every node, viewed for the routing policy."""

    def __init__(
        self, inventory: Inventory, health: HealthBook, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.inventory = inventory
        self.health = health
        self._clock = clock
        self._traffic: dict[str, NodeTraffic] = {}
        self._views: tuple[NodeView, ...] = ()
        self._valid_until = 0.0
        inventory.on_change(self._inventory_changed)

    def _inventory_changed(self) -> None:
        known = set(self.inventory.entries)
        self.health.forget_others(known)
        for node_id in set(self._traffic) - known:
            del self._traffic[node_id]
        self.invalidate()

    def invalidate(self) -> None:
        self._valid_until = 0.0

    def views(self) -> tuple[NodeView, ...]:
        now = self._clock()
        if now < self._valid_until:
            return self._views
        self._views = tuple(self._view(entry, now) for entry in self.inventory.entries.values())
        valid_until = now + LOAD_REFRESH_S
        for entry in self.inventory.entries.values():
            ejected_until = self.health.record(entry.node_id).ejected_until
            if now < ejected_until < valid_until:
                valid_until = ejected_until  # the node is back then: see it at once
        self._valid_until = valid_until
        return self._views

    def _view(self, entry: EdgeEntry, now: float) -> NodeView:
        return NodeView(
            node_id=entry.node_id,
            region=entry.region,
            url=entry.url,
            healthy=self.health.routable(entry.node_id, now),
            capacity_rps=entry.capacity_rps,
            utilization=self.utilization(entry, now),
        )

    def utilization(self, entry: EdgeEntry, now: float) -> float:
        local = self.traffic(entry.node_id).rate(now) / entry.capacity_rps if entry.capacity_rps > 0 else 0.0
        return max(entry.reported_utilization, local)

    def traffic(self, node_id: str) -> NodeTraffic:
        traffic = self._traffic.get(node_id)
        if traffic is None:
            traffic = self._traffic[node_id] = NodeTraffic(window_start=self._clock())
        return traffic

    # What the proxy saw (passive health), forwarded to the health book.

    def sent(self, node_id: str) -> NodeTraffic:
        traffic = self.traffic(node_id)
        traffic.started(self._clock())
        return traffic

    def connect_failed(self, node_id: str, reason: str) -> None:
        if self.health.connect_failed(node_id, self._clock(), reason):
            self.invalidate()

    def answered(self, node_id: str, status: int) -> None:
        if self.health.answered(node_id, status, self._clock()):
            self.invalidate()

    def check_passed(self, node_id: str) -> None:
        if self.health.check_passed(node_id):
            self.invalidate()

    def check_failed(self, node_id: str, reason: str) -> None:
        if self.health.check_failed(node_id, reason):
            self.invalidate()
