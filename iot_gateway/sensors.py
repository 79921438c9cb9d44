"""Simulated sensors: pure, deterministic readings from the world's seed.

A reading is a function of (seed, gateway id, sensor, sample index) alone, through a
counter-based generator (splitmix64), so a run repeats exactly whatever the scheduling, and
samples taken while the broker is away are the same ones they would have been. Each region
has a climate (a base and a daily swing); the daily curve follows the sample's elapsed time;
a heat wave adds enough warmth to push temperatures over 30 °C while it lasts.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

SensorName = Literal["temperature", "humidity", "pressure", "co2"]
SENSORS: tuple[SensorName, ...] = ("temperature", "humidity", "pressure", "co2")
UNITS: dict[SensorName, str] = {"temperature": "C", "humidity": "%", "pressure": "hPa", "co2": "ppm"}
DAY_S = 86_400.0
_MASK = (1 << 64) - 1
# During a heat wave every region is this hot (plus a small daily swing and noise), so
# every temperature reading crosses the contract's 30 °C warning threshold.
HEAT_WAVE_C = 35.0
HEAT_WAVE_SWING_C = 2.5


@dataclass(frozen=True, slots=True, kw_only=True)
class Climate:
    """A region's mean temperature, daily swing and mean humidity."""

    mean_c: float
    swing_c: float
    humidity: float


# Region ids start with their area; anything unknown gets the temperate default.
_CLIMATES: tuple[tuple[str, Climate], ...] = (
    ("ap-southeast", Climate(mean_c=28.0, swing_c=4.0, humidity=80.0)),
    ("ap-south", Climate(mean_c=29.0, swing_c=5.0, humidity=70.0)),
    ("ap-northeast", Climate(mean_c=16.0, swing_c=6.0, humidity=60.0)),
    ("me-", Climate(mean_c=32.0, swing_c=8.0, humidity=30.0)),
    ("af-", Climate(mean_c=25.0, swing_c=7.0, humidity=50.0)),
    ("sa-", Climate(mean_c=23.0, swing_c=5.0, humidity=70.0)),
    ("eu-north", Climate(mean_c=7.0, swing_c=5.0, humidity=75.0)),
    ("eu-", Climate(mean_c=12.0, swing_c=6.0, humidity=65.0)),
    ("us-", Climate(mean_c=15.0, swing_c=7.0, humidity=55.0)),
)
TEMPERATE = Climate(mean_c=15.0, swing_c=6.0, humidity=60.0)


def climate_of(region: str) -> Climate:
    for prefix, climate in _CLIMATES:
        if region.startswith(prefix):
            return climate
    return TEMPERATE


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatWave:
    """From ``start_s`` after the run's start, for ``duration_s``."""

    start_s: float
    duration_s: float

    def __post_init__(self) -> None:
        if self.start_s < 0 or self.duration_s <= 0:
            raise ValueError("a heat wave needs AT >= 0 and FOR > 0")

    def active(self, elapsed_s: float) -> bool:
        return self.start_s <= elapsed_s < self.start_s + self.duration_s


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    sensor: SensorName
    value: float
    unit: str
    ts: float

    def to_json(self) -> dict[str, object]:
        return {"sensor": self.sensor, "value": self.value, "unit": self.unit, "ts": self.ts}


def _splitmix(state: int) -> int:
    z = (state + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _uniform(key: int, index: int) -> float:
    """A uniform draw in [0, 1) for sample ``index`` of stream ``key``."""
    return _splitmix((key ^ (index * 0xD1B54A32D192ED03)) & _MASK) / 2.0**64


def stream_key(seed: int, gateway_id: str, sensor: str) -> int:
    digest = hashlib.sha256(f"{seed}/{gateway_id}/{sensor}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorModel:
    """Everything a gateway's readings depend on."""

    seed: int
    gateway_id: str
    region: str
    sensors: tuple[SensorName, ...]
    interval_s: float
    heat_wave: HeatWave | None = None
    # After set_interval the gateway continues with a new model: its sample 0 comes
    # ``offset_s`` after the run's start and draws noise from index ``first_index`` on.
    offset_s: float = 0.0
    first_index: int = 0
    keys: tuple[int, ...] = field(init=False, repr=False, compare=False)
    phase_s: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.sensors:
            raise ValueError("at least one sensor")
        if self.interval_s <= 0:
            raise ValueError("interval_s must be positive")
        # Derived once: hashing per reading would cost more than the reading itself.
        object.__setattr__(
            self, "keys", tuple(stream_key(self.seed, self.gateway_id, s) for s in self.sensors)
        )
        # Where in the simulated day the run starts (per gateway, from the seed).
        object.__setattr__(
            self, "phase_s", _uniform(stream_key(self.seed, self.gateway_id, "phase"), 0) * DAY_S
        )

    def continued(self, *, interval_s: float, after: int) -> SensorModel:
        """The model that takes over after ``after`` samples of this one, at a new interval."""
        return SensorModel(
            seed=self.seed, gateway_id=self.gateway_id, region=self.region, sensors=self.sensors,
            interval_s=interval_s, heat_wave=self.heat_wave,
            offset_s=self.offset_s + after * self.interval_s, first_index=self.first_index + after,
        )  # fmt: skip


def value_of(sensor: SensorName, climate: Climate, noise: float, day_s: float, hot: bool) -> float:
    """One sensor's value at second ``day_s`` of the day; ``noise`` is uniform in [0, 1)."""
    # Warmest at 15:00, coolest at 03:00; humidity moves the other way.
    daily = math.cos(2 * math.pi * (day_s / DAY_S - 15 / 24))
    centred = (noise - 0.5) * 2
    if sensor == "temperature":
        if hot:
            return round(max(climate.mean_c, HEAT_WAVE_C) + HEAT_WAVE_SWING_C * daily + centred, 2)
        return round(climate.mean_c + climate.swing_c * daily + centred, 2)
    if sensor == "humidity":
        dry = 15.0 if hot else 0.0
        return round(min(100.0, max(0.0, climate.humidity - 10 * daily - dry + 3 * centred)), 2)
    if sensor == "pressure":
        return round(1013.0 + 6 * centred, 2)
    return round(420.0 + 40 * noise, 1)


def sample(model: SensorModel, index: int, *, start_ts: float) -> list[Reading]:
    """The readings of sample ``index`` of ``model``; ``start_ts`` is the run's start (Unix s)."""
    climate = climate_of(model.region)
    elapsed = model.offset_s + index * model.interval_s
    hot = model.heat_wave is not None and model.heat_wave.active(elapsed)
    day_s = (model.phase_s + elapsed) % DAY_S
    ts = round(start_ts + elapsed, 3)
    draw = model.first_index + index
    return [
        Reading(sensor=s, value=value_of(s, climate, _uniform(k, draw), day_s, hot), unit=UNITS[s], ts=ts)
        for s, k in zip(model.sensors, model.keys, strict=True)
    ]


def due_samples(model: SensorModel, elapsed_s: float) -> int:
    """How many of ``model``'s samples are due ``elapsed_s`` after the run's start (its first
    at once)."""
    since = elapsed_s - model.offset_s
    return math.floor(since / model.interval_s + 1e-9) + 1 if since >= 0 else 0
