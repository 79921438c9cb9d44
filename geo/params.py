"""Parameters of the latency model, kept apart so the world model can hold them.

:mod:`geo.latency` re-exports :class:`LatencyParams`; import it from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from geo.errors import InvalidValueError

# "backbone": paths through the backbone graph (geo.backbone); "great-circle": the
# distance model below, one inflation factor over the great circle.
LatencyModelName = Literal["great-circle", "backbone"]
LATENCY_MODELS: tuple[LatencyModelName, ...] = get_args(LatencyModelName)

# Light in vacuum, km per ms: no medium carries a signal faster.
SPEED_OF_LIGHT_KM_PER_MS = 299.792458


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyParams:
    """Parameters of the RTT model; the world file's ``[latency]`` table."""

    model: LatencyModelName = "backbone"
    # The backbone file (model "backbone"); None: geo.backbone.DEFAULT_BACKBONE.
    backbone: Path | None = None

    # c / 1.468 (group index of standard single-mode fiber at 1550 nm) = 204.2 km/ms.
    fiber_km_per_ms: float = 204.2
    # The great-circle model's constants, fitted to the WonderProxy city-pair RTTs tabled
    # in docs/world.md. The backbone model keeps its constants in the backbone file.
    path_inflation: float = 1.6
    per_hop_base_ms: float = 9.65
    # Half-width of the uniform jitter added to each one-way delay.
    jitter_ms: float = 1.0

    def __post_init__(self) -> None:
        if self.model not in LATENCY_MODELS:
            raise InvalidValueError(
                field="model", reason=f"must be one of {', '.join(LATENCY_MODELS)} (got {self.model!r})"
            )
        _require(
            "fiber_km_per_ms",
            self.fiber_km_per_ms,
            0 < self.fiber_km_per_ms <= SPEED_OF_LIGHT_KM_PER_MS,
            "must be above 0 and at most the speed of light in vacuum (299.79 km/ms)",
        )
        _require("path_inflation", self.path_inflation, self.path_inflation >= 1, "must be at least 1")
        _require("per_hop_base_ms", self.per_hop_base_ms, self.per_hop_base_ms >= 0, "must not be negative")
        _require("jitter_ms", self.jitter_ms, self.jitter_ms >= 0, "must not be negative")


def _require(field: str, value: float, ok: bool, reason: str) -> None:
    if not math.isfinite(value) or not ok:
        raise InvalidValueError(field=field, reason=f"{reason} (got {value})")
