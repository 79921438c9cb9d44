"""The latency model: round-trip times between places, over the backbone or the great circle.

Two models, chosen by the world file's ``[latency] model``:

- ``backbone`` (the default): the round trip follows real paths. Each end enters the
  backbone graph (:mod:`geo.backbone`, metros joined by terrestrial routes and submarine
  cables) at one of its nearest hubs; RTT = base + fiber time of the access legs and the
  shortest path + the hop cost of every hub passed (:mod:`geo.backbone_paths`). Routes
  detour around continents as traffic does, so Frankfurt - Seoul is much more than its
  great circle suggests and Oregon - Tokyo is not.
- ``great-circle``: per-hop base + 2 x distance / fiber speed x one path-inflation factor.

Light in fiber covers about 200 km per millisecond. One-way delays for simulation add
seeded jitter but never beat light in fiber on the great circle. Constants are fitted to
published measurements (``docs/world.md``). Backbone routes are cached per pair of points,
so the router's WAN emulation pays a dictionary lookup per request, not a path search.
"""

from __future__ import annotations

import functools
import math
import random
from pathlib import Path

from geo.backbone import DEFAULT_BACKBONE, EARTH_RADIUS_KM, great_circle_km, load_backbone
from geo.backbone_paths import BackbonePaths, Route
from geo.params import LatencyParams
from geo.places import Coordinate, Place, resolve_place
from geo.world import Region, World

__all__ = [
    "EARTH_RADIUS_KM",
    "MAX_DISTANCE_KM",
    "Coordinate",
    "LatencyModel",
    "LatencyParams",
    "Place",
    "Route",
    "haversine_km",
    "paths_for",
]

# Half the circumference: no two points on the sphere are farther apart.
MAX_DISTANCE_KM = math.pi * EARTH_RADIUS_KM
# Great-circle distance in km between two points given in degrees (haversine).
haversine_km = great_circle_km


# Routes remembered per model; the router's clients come from a few hundred places, so
# this is far more than a world needs, and a bound on what a scan of coordinates can cost.
MAX_CACHED_ROUTES = 65_536


@functools.lru_cache(maxsize=8)
def paths_for(path: Path) -> BackbonePaths:
    """The shortest paths of a backbone file, computed once per process (tens of ms)."""
    return BackbonePaths(load_backbone(path))


class LatencyModel:
    """Modeled round-trip and one-way delays between places of one world.

    Places are :class:`Region`, :class:`Country` or :class:`Coordinate` objects, or names
    that :func:`geo.places.resolve_place` understands ("KR", "ap-northeast-2", "Seoul",
    "37.57,126.98"). Pure and deterministic except :meth:`one_way_delay_ms`, whose
    randomness comes only from the generator the caller passes (seed it from the world).
    """

    def __init__(
        self, world: World, params: LatencyParams | None = None, *, paths: BackbonePaths | None = None
    ) -> None:
        """``paths`` overrides the world's backbone (a backbone with a cable cut, say)."""
        self._world = world
        self._params = params if params is not None else world.latency
        p = self._params
        # RTT per km of great-circle distance: there and back, on an inflated path.
        self._rtt_ms_per_km = 2 * p.path_inflation / p.fiber_km_per_ms
        self._paths = (
            paths_for(p.backbone if p.backbone is not None else DEFAULT_BACKBONE)
            if paths is None and p.model == "backbone"
            else paths
        )
        self._routes: dict[tuple[float, float, float, float], Route] = {}
        self._names: dict[str, Place] = {}

    @property
    def paths(self) -> BackbonePaths | None:
        """The backbone's paths; None under the great-circle model."""
        return self._paths

    @property
    def params(self) -> LatencyParams:
        return self._params

    def place(self, place: Place | str) -> Place:
        if not isinstance(place, str):
            return place
        # The WAN emulation names the region of every request: resolve each name once.
        found = self._names.get(place)
        if found is None:
            found = resolve_place(self._world, place)
            if len(self._names) < MAX_CACHED_ROUTES:
                self._names[place] = found
        return found

    def distance_km(self, a: Place | str, b: Place | str) -> float:
        first, second = self.place(a), self.place(b)
        return haversine_km(first.latitude, first.longitude, second.latitude, second.longitude)

    def rtt_for_distance_ms(self, distance_km: float) -> float:
        """Modeled RTT over ``distance_km`` of great circle."""
        return self._params.per_hop_base_ms + distance_km * self._rtt_ms_per_km

    def route(self, a: Place | str, b: Place | str) -> Route | None:
        """The backbone route between two places (cached); None under the great-circle model."""
        if self._paths is None:
            return None
        first, second = self.place(a), self.place(b)
        key = (first.latitude, first.longitude, second.latitude, second.longitude)
        found = self._routes.get(key)
        if found is None:
            found = self._paths.route(key[:2], key[2:])
            if len(self._routes) >= MAX_CACHED_ROUTES:
                self._routes.clear()
            self._routes[key] = found
        return found

    def rtt_ms(self, a: Place | str, b: Place | str) -> float:
        """Modeled mean round-trip time between two places, in ms."""
        route = self.route(a, b)
        if route is not None:
            return route.rtt_ms
        return self.rtt_for_distance_ms(self.distance_km(a, b))

    def one_way_delay_ms(self, country: Place | str, region: Place | str, rng: random.Random) -> float:
        """One simulated one-way delay between a client's place (usually a country, or the
        coordinates a geo database gave) and a region's PoP.

        Half the modeled RTT (a cached route under the backbone model) plus uniform jitter of
        at most ``jitter_ms`` either way, and never below the time light in fiber needs on
        the great circle: jitter may not make the simulated Internet faster than physics allows.
        """
        distance = self.distance_km(country, region)
        jitter = self._params.jitter_ms
        delay = self.rtt_ms(country, region) / 2 + rng.uniform(-jitter, jitter)
        return max(delay, distance / self._params.fiber_km_per_ms)

    def regions_by_rtt(self, place: Place | str) -> tuple[tuple[Region, float], ...]:
        """Every region with its modeled RTT from ``place``, nearest first (ties by id)."""
        origin = self.place(place)
        ranked = sorted((self.rtt_ms(origin, r), r.id, r) for r in self._world.regions)
        return tuple((region, rtt) for rtt, _, region in ranked)
