"""How the engine writes figures in the sentences people read: counts, shares, latencies, durations."""

from __future__ import annotations

from collections.abc import Sequence


def count(value: int) -> str:
    """``1,204``: thousands separated so large counts read at a glance."""
    return f"{value:,}"


def share(rate: float) -> str:
    """A measured share with one decimal, ``41.2%``: figures keep their precision."""
    return f"{rate * 100:.1f}%"


def limit_share(rate: float) -> str:
    """A configured share as the operator wrote it, ``1%`` or ``0.5%``, without trailing zeros."""
    return f"{rate * 100:.4g}%"


def points(rate_difference: float) -> str:
    """A difference between two shares in percentage points, ``0.9``."""
    return _trim(f"{rate_difference * 100:.2f}")


def millis(value: float) -> str:
    """``312 ms``; sub-10 ms latencies keep a decimal because they are the interesting ones."""
    if value >= 10:
        return f"{round(value):,} ms"
    return f"{_trim(f'{value:.1f}')} ms"


def seconds(value: float) -> str:
    """``30 s`` or ``12.5 s``."""
    return f"{_trim(f'{value:.1f}')} s"


def wave_label(index: int, regions: Sequence[str]) -> str:
    """``wave 1 (ap-northeast-2)``: people count waves from 1, the wire from 0."""
    return f"wave {index + 1} ({', '.join(regions)})"


def plural(amount: int, noun: str) -> str:
    """``1 wave``, ``3 waves``."""
    return f"{amount:,} {noun}{'' if amount == 1 else 's'}"


def names(items: Sequence[str]) -> str:
    return ", ".join(items)


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number
