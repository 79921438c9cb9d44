"""The relay's clock: monotonic time for expiry, wall time for the state file and reports.

A swappable part, so tests move time by hand instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (fault expiry is measured on it)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (what survives a restart of the process)."""
        ...


class SystemClock:
    """The real clocks: ``time.monotonic`` and ``time.time``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()
