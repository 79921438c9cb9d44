"""Shortest paths through the backbone, and the route between two points on the map.

:class:`BackbonePaths` runs Dijkstra once from every hub when it is built (a backbone has
tens of hubs, so this takes milliseconds) and keeps the round-trip cost and the next hop of
every hub pair. :meth:`BackbonePaths.route` then joins two points to the backbone through
their nearest hubs and returns a :class:`Route`: the hubs passed and every part of the
round trip. Pure and deterministic: ties between equal paths are broken by hub order.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from geo.backbone import Backbone, Hub, great_circle_km

__all__ = ["BackbonePaths", "Route"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """The modeled round trip between two points, part by part (all times are round trips)."""

    hubs: tuple[Hub, ...]
    access_km: tuple[float, float]
    backbone_km: float
    base_ms: float
    access_ms: float
    backbone_ms: float
    hops_ms: float

    @property
    def rtt_ms(self) -> float:
        return self.base_ms + self.access_ms + self.backbone_ms + self.hops_ms

    @property
    def km(self) -> float:
        """Fiber length of the whole path, one way."""
        return self.access_km[0] + self.backbone_km + self.access_km[1]


def _unit_vector(latitude: float, longitude: float) -> tuple[float, float, float]:
    phi, lam = math.radians(latitude), math.radians(longitude)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


class BackbonePaths:
    """All-pairs shortest round trips between the hubs of one backbone."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        constants = backbone.constants
        self._hubs = backbone.hubs
        self._index = {hub.id: i for i, hub in enumerate(self._hubs)}
        self._hop = [constants.hop_cost(hub.continent) for hub in self._hubs]
        self._ms_per_km = 2 / constants.fiber_km_per_ms
        self._units = [_unit_vector(hub.latitude, hub.longitude) for hub in self._hubs]
        neighbours: list[list[tuple[int, float]]] = [[] for _ in self._hubs]
        for link in backbone.links:
            a, b = self._index[link.a], self._index[link.b]
            km = backbone.length_km(link)
            neighbours[a].append((b, km))
            neighbours[b].append((a, km))
        self._neighbours = neighbours
        self._cost: list[list[float]] = []
        self._km: list[list[float]] = []
        self._previous: list[list[int]] = []
        for source in range(len(self._hubs)):
            costs, lengths, previous = self._dijkstra(source)
            self._cost.append(costs)
            self._km.append(lengths)
            self._previous.append(previous)

    def _dijkstra(self, source: int) -> tuple[list[float], list[float], list[int]]:
        """Round-trip cost (fiber both ways plus the hop cost of every hub, the source's
        included) from ``source`` to every hub; unreachable hubs cost infinity."""
        count = len(self._hubs)
        cost = [math.inf] * count
        km = [math.inf] * count
        previous = [-1] * count
        cost[source], km[source] = self._hop[source], 0.0
        queue = [(cost[source], source)]
        while queue:
            here_cost, here = heapq.heappop(queue)
            if here_cost > cost[here]:
                continue
            for there, length in self._neighbours[here]:
                candidate = here_cost + length * self._ms_per_km + self._hop[there]
                # Equal costs keep the path through the lower-numbered hub: deterministic.
                if candidate < cost[there] or (candidate == cost[there] and here < previous[there]):
                    cost[there], km[there], previous[there] = candidate, km[here] + length, here
                    heapq.heappush(queue, (candidate, there))
        return cost, km, previous

    def hub_path(self, start: str, end: str) -> tuple[Hub, ...]:
        """The hubs of the cheapest path from ``start`` to ``end``, both included; () if none."""
        first, last = self._index[start], self._index[end]
        if math.isinf(self._cost[first][last]):
            return ()
        path = [last]
        while path[-1] != first:
            path.append(self._previous[first][path[-1]])
        return tuple(self._hubs[i] for i in reversed(path))

    def hub_rtt_ms(self, start: str, end: str) -> float:
        """Backbone round trip between two hubs: fiber plus the hop costs (no base, no access)."""
        return self._cost[self._index[start]][self._index[end]]

    def nearest_hubs(self, latitude: float, longitude: float, *, count: int = 0) -> list[tuple[float, int]]:
        """The ``count`` (default ``entry_hubs``) nearest hubs as (great-circle km, hub index)."""
        # Ranking by the dot product of unit vectors (the cosine of the central angle) costs a
        # fraction of a haversine per hub; only the chosen hubs get their distance computed.
        x, y, z = _unit_vector(latitude, longitude)
        ranked = sorted((-(x * hx + y * hy + z * hz), i) for i, (hx, hy, hz) in enumerate(self._units))
        hubs = self._hubs
        return sorted(
            (great_circle_km(latitude, longitude, hubs[i].latitude, hubs[i].longitude), i)
            for _, i in ranked[: count or self.backbone.constants.entry_hubs]
        )

    def _best_entry(
        self, near_a: list[tuple[float, int]], near_b: list[tuple[float, int]]
    ) -> tuple[float, int, int, float, float]:
        """(round trip without base, entry hub, exit hub, access km at each end), cheapest."""
        access_factor = self.backbone.constants.access_route_factor
        best = (math.inf, -1, -1, 0.0, 0.0)
        for km_a, hub_a in near_a:
            access_a = km_a * access_factor
            for km_b, hub_b in near_b:
                access_b = km_b * access_factor
                total = (access_a + access_b) * self._ms_per_km + self._cost[hub_a][hub_b]
                if total < best[0]:
                    best = (total, hub_a, hub_b, access_a, access_b)
        return best

    def route(self, a: tuple[float, float], b: tuple[float, float]) -> Route:
        """The cheapest route from point ``a`` to point ``b`` (latitude, longitude pairs).

        Each end may enter through any of its ``entry_hubs`` nearest hubs: the nearest hub is
        not always the one that leads the right way (Oregon's nearest is Portland, but its
        traffic to Europe is better off entering at Seattle).
        """
        constants = self.backbone.constants
        access_factor = constants.access_route_factor
        near_a, near_b = self.nearest_hubs(*a), self.nearest_hubs(*b)
        best = self._best_entry(near_a, near_b)
        if math.isinf(best[0]):
            # A cut left the nearest hubs of one end without a path to the other's: its
            # traffic backhauls to the nearest hub that still has one.
            best = self._best_entry(
                self.nearest_hubs(*a, count=len(self._hubs)), self.nearest_hubs(*b, count=len(self._hubs))
            )
        if math.isinf(best[0]):
            # No hub reaches another (a backbone without links): the great circle at the access factor.
            km = great_circle_km(*a, *b) * access_factor
            return Route(
                hubs=(),
                access_km=(km, 0.0),
                backbone_km=0.0,
                base_ms=constants.base_ms,
                access_ms=km * self._ms_per_km,
                backbone_ms=0.0,
                hops_ms=0.0,
            )
        _, hub_a, hub_b, access_a, access_b = best
        hubs = self.hub_path(self._hubs[hub_a].id, self._hubs[hub_b].id)
        backbone_km = self._km[hub_a][hub_b]
        return Route(
            hubs=hubs,
            access_km=(access_a, access_b),
            backbone_km=backbone_km,
            base_ms=constants.base_ms,
            access_ms=(access_a + access_b) * self._ms_per_km,
            backbone_ms=backbone_km * self._ms_per_km,
            hops_ms=sum(self._hop[self._index[hub.id]] for hub in hubs),
        )
