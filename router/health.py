"""Is an edge node fit to receive traffic? Active checks and passive ejection, as pure code.

Two independent signals, as in Envoy (active health checking plus outlier detection):

- **Active**: the router asks every node's ``/healthz`` on an interval. ``unhealthy_after``
  consecutive failures mark a node down; ``healthy_after`` consecutive successes mark it
  up again. A node that comes back this way starts afresh (its ejection is lifted).
- **Passive**: what real traffic shows. A connect failure ejects the node at once;
  ``eject_after_5xx`` consecutive 5xx answers eject it too. An ejection lasts
  ``base_ejection_s`` times the number of ejections in a row (capped at
  ``max_ejection_s``), so a flapping node stays out longer each time.

A node is routable when it is up and not ejected. New nodes start up (optimistic): a
node that just joined is routed to at once, and the first failure says otherwise.
The clock is passed in (``now``, monotonic seconds), so every decision is testable.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.errors import ConfigError

# The command-line flag of each setting, for error messages.
_FLAGS = {
    "interval_s": "--health-interval",
    "timeout_s": "--health-timeout",
    "unhealthy_after": "--unhealthy-after",
    "healthy_after": "--healthy-after",
    "eject_after_5xx": "--eject-after-5xx",
    "base_ejection_s": "--ejection",
    "max_ejection_s": "--max-ejection",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSettings:
    """Thresholds and timings of active checks and passive ejection."""

    interval_s: float = 1.0
    timeout_s: float = 1.0
    unhealthy_after: int = 2
    healthy_after: int = 1
    eject_after_5xx: int = 5
    base_ejection_s: float = 2.0
    max_ejection_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("interval_s", "timeout_s", "base_ejection_s", "max_ejection_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(field=_FLAGS[name], reason="must be positive")
        for name in ("unhealthy_after", "healthy_after", "eject_after_5xx"):
            if getattr(self, name) < 1:
                raise ConfigError(field=_FLAGS[name], reason="must be at least 1")
        if self.max_ejection_s < self.base_ejection_s:
            raise ConfigError(field="--max-ejection", reason="must be at least --ejection")


@dataclass(slots=True)
class NodeHealth:
    """The health record of one node (mutable; owned by one ``HealthBook``)."""

    up: bool = True
    check_successes: int = 0
    check_failures: int = 0
    last_check_error: str = ""
    consecutive_5xx: int = 0
    ejected_until: float = 0.0
    ejections_in_a_row: int = 0
    ejections_total: int = 0
    last_ejection_reason: str = ""

    def routable(self, now: float) -> bool:
        return self.up and now >= self.ejected_until


class HealthBook:
    """Health records of every known node."""

    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self._nodes: dict[str, NodeHealth] = {}

    def record(self, node_id: str) -> NodeHealth:
        health = self._nodes.get(node_id)
        if health is None:
            health = self._nodes[node_id] = NodeHealth()
        return health

    def forget_others(self, known: set[str]) -> None:
        """Drop the records of nodes that left the inventory."""
        for node_id in set(self._nodes) - known:
            del self._nodes[node_id]

    def routable(self, node_id: str, now: float) -> bool:
        health = self._nodes.get(node_id)
        return health is None or health.routable(now)

    # Active checks.

    # Each event answers whether the node's routability changed (callers cache views).

    def check_passed(self, node_id: str) -> bool:
        health = self.record(node_id)
        health.check_failures = 0
        health.check_successes += 1
        health.last_check_error = ""
        if not health.up and health.check_successes >= self.settings.healthy_after:
            health.up = True
            # Back from the dead: a fresh start, not the rest of an old ejection.
            health.ejected_until = 0.0
            health.ejections_in_a_row = 0
            health.consecutive_5xx = 0
            return True
        return False

    def check_failed(self, node_id: str, reason: str) -> bool:
        health = self.record(node_id)
        health.check_successes = 0
        health.check_failures += 1
        health.last_check_error = reason
        if health.up and health.check_failures >= self.settings.unhealthy_after:
            health.up = False
            return True
        return False

    # Passive detection.

    def connect_failed(self, node_id: str, now: float, reason: str) -> bool:
        return self._eject(self.record(node_id), now, f"connect: {reason}")

    def answered(self, node_id: str, status: int, now: float) -> bool:
        health = self._nodes.get(node_id)
        if health is None:
            if status < 500:
                return False  # the common case, and nothing to reset
            health = self.record(node_id)
        if status < 500:
            health.consecutive_5xx = 0
            if now >= health.ejected_until:
                health.ejections_in_a_row = 0
            return False
        health.consecutive_5xx += 1
        if health.consecutive_5xx >= self.settings.eject_after_5xx:
            health.consecutive_5xx = 0
            return self._eject(health, now, f"{self.settings.eject_after_5xx} consecutive 5xx responses")
        return False

    def _eject(self, health: NodeHealth, now: float, reason: str) -> bool:
        if now < health.ejected_until:
            return False  # already out: concurrent failures of one outage count once
        health.ejections_in_a_row += 1
        health.ejections_total += 1
        seconds = min(self.settings.base_ejection_s * health.ejections_in_a_row, self.settings.max_ejection_s)
        health.ejected_until = now + seconds
        health.last_ejection_reason = reason
        return True
