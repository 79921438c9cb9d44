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
from dataclasses import dataclass

from geo.errors import InvalidValueError

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


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyParams:
    """Parameters of the RTT model; the world file's ``[latency]`` table."""

    # c / 1.468 (group index of standard single-mode fiber at 1550 nm) = 204.2 km/ms.
    fiber_km_per_ms: float = 204.2
    path_inflation: float = 1.3
    per_hop_base_ms: float = 5.0
    # Half-width of the uniform jitter added to each one-way delay.
    jitter_ms: float = 1.0

    def __post_init__(self) -> None:
        _require(
            "fiber_km_per_ms",
            self.fiber_km_per_ms,
            0 < self.fiber_km_per_ms <= 299.792458,
            "must be above 0 and at most the speed of light in vacuum (299.79 km/ms)",
        )
        _require("path_inflation", self.path_inflation, self.path_inflation >= 1, "must be at least 1")
        _require("per_hop_base_ms", self.per_hop_base_ms, self.per_hop_base_ms >= 0, "must not be negative")
        _require("jitter_ms", self.jitter_ms, self.jitter_ms >= 0, "must not be negative")


def _require(field: str, value: float, ok: bool, reason: str) -> None:
    if not math.isfinite(value) or not ok:
        raise InvalidValueError(field=field, reason=f"{reason} (got {value})")
