"""The latency model: great-circle distance and round-trip times between places.

RTT = per-hop base + 2 x distance / fiber speed x path inflation. Light in fiber covers
about 200 km per millisecond; real routes are longer than the great circle (cables follow
coasts, peer at exchanges), which the inflation factor absorbs; the base covers the
access network, serialisation and processing that every round trip pays regardless of
distance. One-way delays for simulation add seeded jitter but never beat the speed of
light in fiber. Defaults are fitted to published measurements (see ``docs/world.md``).
"""

from __future__ import annotations

import math
import random

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
    "haversine_km",
]

# Mean Earth radius (IUGG); the haversine formula assumes a sphere, which is within
# 0.5% of the ellipsoid: far below the spread of real Internet paths.
EARTH_RADIUS_KM = 6371.0088
# Half the circumference: no two points on the sphere are farther apart.
MAX_DISTANCE_KM = math.pi * EARTH_RADIUS_KM


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    # Rounding can push ``a`` a hair outside [0, 1] for antipodal points; asin would fail.
    a = min(1.0, max(0.0, a))
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


class LatencyModel:
    """Modeled round-trip and one-way delays between places of one world.

    Places are :class:`Region`, :class:`Country` or :class:`Coordinate` objects, or names
    that :func:`geo.places.resolve_place` understands ("KR", "ap-northeast-2", "Seoul",
    "37.57,126.98"). Pure and deterministic except :meth:`one_way_delay_ms`, whose
    randomness comes only from the generator the caller passes (seed it from the world).
    """

    def __init__(self, world: World, params: LatencyParams | None = None) -> None:
        self._world = world
        self._params = params if params is not None else world.latency
        p = self._params
        # RTT per km of great-circle distance: there and back, on an inflated path.
        self._rtt_ms_per_km = 2 * p.path_inflation / p.fiber_km_per_ms

    @property
    def params(self) -> LatencyParams:
        return self._params

    def place(self, place: Place | str) -> Place:
        return resolve_place(self._world, place) if isinstance(place, str) else place

    def distance_km(self, a: Place | str, b: Place | str) -> float:
        first, second = self.place(a), self.place(b)
        return haversine_km(first.latitude, first.longitude, second.latitude, second.longitude)

    def rtt_for_distance_ms(self, distance_km: float) -> float:
        """Modeled RTT over ``distance_km`` of great circle."""
        return self._params.per_hop_base_ms + distance_km * self._rtt_ms_per_km

    def rtt_ms(self, a: Place | str, b: Place | str) -> float:
        """Modeled mean round-trip time between two places, in ms."""
        return self.rtt_for_distance_ms(self.distance_km(a, b))

    def one_way_delay_ms(self, country: Place | str, region: Place | str, rng: random.Random) -> float:
        """One simulated one-way delay between a client's place (usually a country, or the
        coordinates a geo database gave) and a region's PoP.

        Half the modeled RTT plus uniform jitter of at most ``jitter_ms`` either way, and
        never below the time light in fiber needs on the great circle: jitter may not
        make the simulated Internet faster than physics allows.
        """
        distance = self.distance_km(country, region)
        jitter = self._params.jitter_ms
        delay = self.rtt_for_distance_ms(distance) / 2 + rng.uniform(-jitter, jitter)
        return max(delay, distance / self._params.fiber_km_per_ms)

    def regions_by_rtt(self, place: Place | str) -> tuple[tuple[Region, float], ...]:
        """Every region with its modeled RTT from ``place``, nearest first (ties by id)."""
        origin = self.place(place)
        ranked = sorted((self.rtt_ms(origin, r), r.id, r) for r in self._world.regions)
        return tuple((region, rtt) for rtt, _, region in ranked)
