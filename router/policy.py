"""Which edge node should serve this client? The routing decision, as pure code (no I/O).

Given where the client is, the world, and what the router knows of every edge node
(healthy or not, capacity, utilization), :meth:`RoutingPolicy.plan` returns an ordered
list of candidates, each with the reason it is there:

- ``pinned``: the request named a region or node (``x-edge-pin``), and it is usable;
- ``nearest``: the nearest region (by modeled RTT) that the world gives edge nodes;
- ``failover``: a farther region, because the nearer ones have no node up (or as the
  fallback behind a nearer region that can serve);
- ``overload``: a farther region because the nearer ones are over capacity, or, when every
  healthy node is over capacity, those saturated nodes themselves, nearest first (serving
  slowly beats refusing, as Envoy's panic threshold also decides).

Down nodes never appear. Within a region, nodes are ordered by weighted rendezvous
hashing of the client's address (highest random weight, weights by capacity): a client
keeps hitting the same node, and so that node's cache, and when a node leaves only the
clients that node had move elsewhere.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from geo.latency import Coordinate, LatencyModel
from geo.world import World

Reason = Literal["nearest", "failover", "overload", "pinned"]
REASONS: tuple[Reason, ...] = ("nearest", "failover", "overload", "pinned")
_HASH_SPAN = float(2**64)
# Regions are ranked from the client's coordinates rounded to this many degrees (~1 km),
# and the ranking is cached: clients of one place share it.
_RANKING_PRECISION = 2
_MAX_CACHED_RANKINGS = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeView:
    """What the router knows of one edge node at the moment of the decision."""

    node_id: str
    region: str
    url: str
    healthy: bool = True
    capacity_rps: float = 1.0
    # Share of its capacity in use (0..1; at or above 1 the node is over capacity).
    utilization: float = 0.0

    @property
    def saturated(self) -> bool:
        return self.utilization >= 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One node to try, in order, and why."""

    node: NodeView
    reason: Reason
    # Modeled RTT between the client and the node's region (None: client location unknown).
    rtt_ms: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientPlace:
    """The routing-relevant facts of a client: its address (the hash key) and coordinates."""

    address: str
    latitude: float | None = None
    longitude: float | None = None
    pin: str | None = None

    @property
    def located(self) -> bool:
        return self.latitude is not None and self.longitude is not None


class RoutingPolicy:
    """Ranks regions by modeled RTT from the client, then nodes by weighted rendezvous hash."""

    def __init__(self, world: World, latency: LatencyModel | None = None) -> None:
        self._world = world
        self._latency = latency or LatencyModel(world)
        self._world_order = tuple((region.id, None) for region in world.regions)
        self._staffed = {region.id: region.edge_nodes > 0 for region in world.regions}
        self._rankings: dict[tuple[float, float], tuple[tuple[str, float | None], ...]] = {}

    def region_ranking(self, client: ClientPlace) -> tuple[tuple[str, float | None], ...]:
        """Every region of the world with its modeled RTT from the client, nearest first.

        A client of unknown location gets the world file's order, with no RTT.
        """
        if client.latitude is None or client.longitude is None:
            return self._world_order
        key = (round(client.latitude, _RANKING_PRECISION), round(client.longitude, _RANKING_PRECISION))
        ranking = self._rankings.get(key)
        if ranking is None:
            origin = Coordinate(latitude=key[0], longitude=key[1])
            ranking = tuple((region.id, rtt) for region, rtt in self._latency.regions_by_rtt(origin))
            if len(self._rankings) >= _MAX_CACHED_RANKINGS:
                self._rankings.clear()
            self._rankings[key] = ranking
        return ranking

    def plan(
        self, client: ClientPlace, nodes: Iterable[NodeView], *, limit: int | None = None
    ) -> list[Candidate]:
        """The ordered candidates for ``client``; at most ``limit`` of them when given."""
        return list(_take(self.candidates(client, nodes), limit))

    def candidates(self, client: ClientPlace, nodes: Iterable[NodeView]) -> Iterator[Candidate]:
        """The candidates lazily, best first (a proxy needs one, or two when it retries)."""
        by_region: dict[str, list[NodeView]] = {}
        for node in nodes:
            if node.healthy:
                by_region.setdefault(node.region, []).append(node)
        ranking = list(self.region_ranking(client))
        rtts = dict(ranking)
        # Regions of nodes the world does not know (an operator's typo) come last.
        ranking += [(region, None) for region in sorted(by_region) if region not in rtts]
        seen: set[str] = set()
        if client.pin:
            for node in _pinned(client.pin, client.address, by_region):
                seen.add(node.node_id)
                yield Candidate(node=node, reason="pinned", rtt_ms=rtts.get(node.region))
        saturated: list[Candidate] = []
        passed_down = passed_overloaded = False
        for region, rtt in ranking:
            ordered = rendezvous_order(client.address, by_region.get(region, ()))
            if not ordered:
                # The world gives this region edge nodes, and none is up: it is down. (A
                # region the world leaves empty on purpose is no outage.)
                passed_down = passed_down or self._staffed.get(region, True)
                continue
            usable = [node for node in ordered if not node.saturated and node.node_id not in seen]
            reason: Reason = "overload" if passed_overloaded else "failover" if passed_down else "nearest"
            for node in usable:
                yield Candidate(node=node, reason=reason, rtt_ms=rtt)
            busy = [node for node in ordered if node.saturated and node.node_id not in seen]
            saturated.extend(Candidate(node=node, reason="overload", rtt_ms=rtt) for node in busy)
            passed_overloaded = passed_overloaded or (not usable and bool(busy))
            # Anything after a region that could serve (pinned included) is a fallback for when it fails.
            passed_down = passed_down or bool(usable) or any(node.node_id in seen for node in ordered)
        yield from saturated


def _pinned(pin: str, address: str, by_region: dict[str, list[NodeView]]) -> list[NodeView]:
    if pin in by_region:
        ordered = rendezvous_order(address, by_region[pin])
        return [node for node in ordered if not node.saturated] or ordered
    return [node for nodes in by_region.values() for node in nodes if node.node_id == pin]


def _take(candidates: Iterator[Candidate], limit: int | None) -> Iterator[Candidate]:
    for index, candidate in enumerate(candidates):
        if limit is not None and index >= limit:
            return
        yield candidate


def rendezvous_order(key: str, nodes: Sequence[NodeView]) -> list[NodeView]:
    """``nodes`` by weighted rendezvous hash of ``key``: highest score first, ties by id.

    Each (key, node) pair draws a uniform u in (0, 1) from a hash; the score
    ``capacity / -ln(u)`` makes a node's chance of winning proportional to its capacity,
    and removing a node changes the winner only for the keys it had won.
    """
    if len(nodes) < 2:
        return list(nodes)
    return sorted(nodes, key=lambda node: (-rendezvous_score(key, node), node.node_id))


def rendezvous_score(key: str, node: NodeView) -> float:
    digest = hashlib.blake2b(f"{key}\x00{node.node_id}".encode(), digest_size=8).digest()
    uniform = (int.from_bytes(digest, "big") + 0.5) / _HASH_SPAN
    return max(node.capacity_rps, 1e-9) / -math.log(uniform)
