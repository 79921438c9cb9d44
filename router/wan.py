"""The emulated wide-area path between a client and a PoP: modeled latency plus faults.

:class:`WanSettings` is the modeled one-way delay (``--wan model``); :class:`WanPath`
lays the operator's fault overlay (``router.faults``) over it, whether the model is on or
off. The proxy asks for one :class:`Leg` per direction of a request and waits it out.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from geo.latency import Coordinate, LatencyModel
from geo.lookup import Location
from router.errors import WanLossError
from router.faults import FaultTable, WanFault, one_way_trip


@dataclass(frozen=True, slots=True, kw_only=True)
class WanSettings:
    """WAN emulation: delay each direction by the modeled one-way latency (with jitter)."""

    enabled: bool
    latency: LatencyModel
    rng: random.Random

    def one_way_ms(self, location: Location, region: str) -> float:
        if not self.enabled or location.latitude is None or location.longitude is None:
            return 0.0
        origin = Coordinate(latitude=location.latitude, longitude=location.longitude)
        return self.latency.one_way_delay_ms(origin, region, self.rng)


@dataclass(frozen=True, slots=True, kw_only=True)
class Leg:
    """One direction of one request: the delay to wait, and whether it is lost for good."""

    delay_ms: float
    fault: WanFault | None = None
    retransmissions: int = 0
    lost: bool = False

    def lost_error(self, region: str, trip: Literal["request", "answer"]) -> WanLossError:
        """What the client is told when this leg was lost for good."""
        assert self.fault is not None
        return WanLossError(
            f"emulated packet loss: the {trip} between the client and {region} was lost "
            f"{self.retransmissions + 1} times in a row ({self.fault.loss:.1%} loss, {self.fault.fault_id}); "
            f"the client's TCP gave up after {self.retransmissions} retransmissions",
            region=region,
            fault_id=self.fault.fault_id,
            trip=trip,
        )


NO_DELAY = Leg(delay_ms=0.0)


class WanPath:
    """Modeled delay plus the fault overlay, for each direction of each request."""

    def __init__(
        self, settings: WanSettings, faults: FaultTable, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.faults = faults
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """Whether the modeled latency is on (faults apply either way)."""
        return self.settings.enabled

    def leg(self, location: Location, region: str) -> Leg:
        base_ms = self.settings.one_way_ms(location, region)
        if self.faults.empty:
            return Leg(delay_ms=base_ms) if base_ms else NO_DELAY
        fault = self.faults.get(region, self._clock())
        if fault is None:
            return Leg(delay_ms=base_ms)
        trip = one_way_trip(fault, base_ms, self.settings.rng)
        return Leg(
            delay_ms=base_ms + trip.extra_ms,
            fault=fault,
            retransmissions=trip.retransmissions,
            lost=trip.lost,
        )
