"""Exponential back-off with jitter for reconnects (a pure calculation)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Delay before reconnect attempt ``n`` (0-based): ``initial * multiplier**n`` capped at ``maximum``,
    of which a random fraction up to ``jitter`` is taken off, so that a thousand nodes that lost the
    control plane together do not all come back in the same millisecond."""

    initial_s: float = 0.2
    maximum_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.maximum_s:
            raise ValueError("need 0 < initial_s <= maximum_s")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.maximum_s, self.initial_s * self.multiplier ** min(attempt, 64))
        draw = (rng or random).random()
        return base * (1 - self.jitter * draw)
