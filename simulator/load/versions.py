"""Which app version answered (``x-edge-app: NAME@VERSION``): the report's figures of it.

Pure helpers shared by the JSON report, the terminal tables and the HTML page: versions
in a stable order (by app, then version number, so ``1.10.0`` comes after ``1.9.0``;
``-`` for answers without the header and ``other`` last), counts turned into shares, a
one-line summary, and one colour per version for the whole page, so that a version looks
the same in every table and every lane of the chart.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from simulator.load.charts import PALETTE
from simulator.load.headers import OTHER_VERSION
from simulator.load.recorder import NO_VERSION

NO_VERSION_COLOR = "#c8c8c8"  # light: answers without the header are the background
OTHER_COLOR = "#7f7f7f"
_PART = re.compile(r"[.+\-_]")

VersionKey = tuple[int, str, tuple[tuple[int, int, str], ...]]


def version_key(name: str) -> VersionKey:
    """Sort key: ``geo-hello@1.9.0`` < ``geo-hello@1.10.0`` < ``geo-hello@2.0.0`` < ``-`` < ``other``."""
    if name == NO_VERSION:
        return (1, name, ())
    if name == OTHER_VERSION:
        return (2, name, ())
    app, _, version = name.rpartition("@")
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _PART.split(version))
    return (0, app, parts)


def ordered(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: counts[name] for name in sorted(counts, key=version_key) if counts[name]}


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    """Each version's share of the answers counted (rounded as the report's other shares)."""
    total = sum(counts.values())
    return {name: round(n / total, 6) for name, n in ordered(counts).items()} if total else {}


def figures(counts: Mapping[str, int]) -> dict[str, Any]:
    """The report's ``versions`` (answers) and ``version_shares`` of one country, region or run."""
    return {"versions": ordered(counts), "version_shares": shares(counts)}


def add_up(counters: Iterable[Mapping[str, int]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for counts in counters:
        total.update(counts)
    return total


def any_app(report: Mapping[str, Any]) -> bool:
    """Whether any answer of the run carried ``x-edge-app`` (else there is nothing to show)."""
    return any(name != NO_VERSION for name in report["totals"].get("versions", {}))


def percent(share: float) -> str:
    """``71%``; a canary's few answers show as ``<1%``, not ``0%``."""
    if 0 < share < 0.01:
        return "<1%"
    if 0.99 < share < 1:
        return ">99%"
    return f"{share:.0%}"


def summary(version_shares: Mapping[str, float]) -> str:
    """``geo-hello@1.0.0 71%, geo-hello@1.1.0 29%`` (``-`` when no answer was counted)."""
    return ", ".join(f"{name} {percent(share)}" for name, share in version_shares.items()) or "-"


def colors(names: Iterable[str]) -> dict[str, str]:
    """A colour per version, in version order: the same version has the same colour everywhere."""
    result: dict[str, str] = {}
    named = 0
    for name in sorted(set(names), key=version_key):
        if name == NO_VERSION:
            result[name] = NO_VERSION_COLOR
        elif name == OTHER_VERSION:
            result[name] = OTHER_COLOR
        else:
            result[name] = PALETTE[named % len(PALETTE)]
            named += 1
    return result
