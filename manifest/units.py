"""Parsers for the human units manifests use: sizes ("16MiB") and durations ("100ms").

Both raise ``ValueError`` with a message fit to show a user; the manifest parser wraps it
into a ``ManifestError`` that adds the file and key.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "k": 1024,
    "ki": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gi": 1024**3,
    "gib": 1024**3,
}
_DURATION_UNITS = {
    "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_QUANTITY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Zµ]*)\s*")


def _split(text: str, what: str) -> tuple[Decimal, str]:
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a {what} (expected a number and a unit)")
    try:
        return Decimal(match[1]), match[2].lower()
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"{text!r} is not a number") from exc


def parse_size(value: str | int) -> int:
    """Bytes in ``value``: an integer, or a number with B, kB/MB/GB (10^3) or KiB/MiB/GiB (2^10).

    ``K``, ``M``, ``G`` (and Kubernetes' ``Ki``, ``Mi``, ``Gi``) mean the binary units, as
    memory sizes always are in practice. Units are case-insensitive.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a size such as '16MiB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    number, unit = _split(value, "size")
    multiplier = _SIZE_UNITS.get(unit)
    if multiplier is None:
        raise ValueError(f"unknown size unit {unit!r} in {value!r}; use B, KiB, MiB, GiB, kB, MB or GB")
    size = number * multiplier
    if size != size.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number of bytes")
    return int(size)


def parse_duration(value: str) -> float:
    """Seconds in ``value``: a number with us, ms, s, m or h ("100ms", "1.5s", "2m")."""
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '100ms', got {value!r}")
    number, unit = _split(value, "duration")
    if not unit:
        raise ValueError(f"{value!r} has no unit; write e.g. '{value.strip()}ms' or '{value.strip()}s'")
    multiplier = _DURATION_UNITS.get(unit)
    if multiplier is None:
        raise ValueError(f"unknown duration unit {unit!r} in {value!r}; use us, ms, s, m or h")
    return float(number * multiplier)


def format_size(size: int) -> str:
    """The shortest exact binary-unit spelling of ``size`` ("16MiB", "1536KiB", "100B")."""
    for unit, multiplier in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % multiplier == 0:
            return f"{size // multiplier}{unit}"
    return f"{size}B"
