"""The HTTP cache as the clients saw it (``x-cache``): the report's figures, table and page section.

Pure helpers shared by the JSON report, the terminal tables and the HTML page. An edge
node marks every answer that went through its cache with ``x-cache``: HIT, MISS, STALE,
REVALIDATED or BYPASS; answers that never touched the cache carry none and are not
counted here. The hit ratio is (HIT + REVALIDATED) / (HIT + REVALIDATED + MISS + STALE):
a revalidated answer came from the cache (the origin only confirmed it), a stale one did
not count as fresh, and BYPASS (not cacheable) is neither a hit nor a miss. It is
``None`` (shown blank) when no answer was looked up in the cache.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any

from rich import box
from rich.table import Table

from simulator.load.headers import CACHE_RESULTS, OTHER_CACHE

HITS = frozenset({"HIT", "REVALIDATED"})
MISSES = frozenset({"MISS", "STALE"})
ORDER = (*CACHE_RESULTS, OTHER_CACHE)
RATIO_NOTE = "hit ratio = (HIT + REVALIDATED) / (HIT + REVALIDATED + MISS + STALE); BYPASS is neither"


def ordered(counts: Mapping[str, int]) -> dict[str, int]:
    """The outcomes in a fixed order (HIT, MISS, STALE, REVALIDATED, BYPASS, OTHER), zeros left out."""
    return {name: counts[name] for name in ORDER if counts.get(name)}


def hit_ratio(counts: Mapping[str, int]) -> float | None:
    hits = sum(counts.get(name, 0) for name in HITS)
    looked_up = hits + sum(counts.get(name, 0) for name in MISSES)
    return round(hits / looked_up, 6) if looked_up else None


def figures(counts: Mapping[str, int]) -> dict[str, Any]:
    """The report's ``cache`` (answers by outcome), ``cache_shares`` (of the answers with
    ``x-cache``) and ``hit_ratio`` of one country, region or run."""
    cache = ordered(counts)
    total = sum(cache.values())
    return {
        "cache": cache,
        "cache_shares": {name: round(n / total, 6) for name, n in cache.items()} if total else {},
        "hit_ratio": hit_ratio(cache),
    }


def any_cache(report: Mapping[str, Any]) -> bool:
    """Whether any answer of the run carried ``x-cache`` (else there is nothing to show)."""
    return bool(report["totals"].get("cache"))


def ratio_text(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.1%}"


def shares_text(shares: Mapping[str, float]) -> str:
    """``HIT 80%, MISS 15%, STALE 5%`` (``-`` without any answer through the cache)."""
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items()) or "-"


def _lines(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    lines: list[tuple[str, Mapping[str, Any]]] = list(report["countries"].items())
    lines += list(report["regions"].items())
    lines.append(("all", report["totals"]))
    return lines


def cache_table(report: Mapping[str, Any]) -> Table:
    """Per country, then per serving region, then the run: answers through the cache, hit
    ratio and the share of each outcome."""
    table = Table(title="answers through the HTTP cache (x-cache)", caption=RATIO_NOTE, box=box.SIMPLE_HEAD)
    table.add_column("country / region", no_wrap=True)
    table.add_column("cached answers", justify="right", no_wrap=True)
    table.add_column("hit ratio", justify="right", no_wrap=True)
    table.add_column("outcomes", overflow="fold", min_width=12)
    countries = len(report["countries"])
    for index, (name, figures_) in enumerate(_lines(report)):
        if index in {countries, countries + len(report["regions"])}:
            table.add_section()
        cache = figures_.get("cache", {})
        table.add_row(
            name,
            f"{sum(cache.values()):,}",
            ratio_text(figures_.get("hit_ratio")),
            shares_text(figures_.get("cache_shares", {})),
        )
    return table


def cache_section(report: Mapping[str, Any]) -> str:
    """The page's cache table (``id="cache"``), or nothing when no answer carried ``x-cache``."""
    if not any_cache(report):
        return ""
    head = "".join(f"<th>{name}</th>" for name in ORDER if name != OTHER_CACHE)
    rows = []
    for name, figures_ in _lines(report):
        cache = figures_.get("cache", {})
        shares = figures_.get("cache_shares", {})
        cells = "".join(f"<td>{shares[o]:.1%}</td>" if o in shares else "<td></td>" for o in ORDER[:-1])
        rows.append(
            f"<tr data-name=\"{escape(name)}\" data-cache='{escape(json.dumps(cache))}'>"
            f"<td>{escape(name)}</td><td>{sum(cache.values()):,}</td>"
            f"<td>{ratio_text(figures_.get('hit_ratio'))}</td>{cells}</tr>"
        )
    return (
        "<h2>HTTP cache (x-cache), per country and serving region</h2>"
        f'<p class="note">Share of the answers that went through the cache; {escape(RATIO_NOTE)}.</p>'
        f'<table id="cache"><tr><th>country / region</th><th>cached answers</th><th>hit ratio</th>{head}</tr>'
        + "".join(rows)
        + "</table>"
    )
