"""Durations on command lines: ``250ms``, ``30s``, ``5m``, ``1h``, ``1h30m`` or plain seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError with the accepted forms."""
    value = text.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    position, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        position = match.end()
    if position != len(value) or not value:
        raise ValueError(f"{text!r} is not a duration (like 500ms, 30s, 5m, 1h30m)")
    return total
