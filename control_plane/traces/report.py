"""What ``GetStats`` answers: the nodes' exact figures per app version where nodes send
them, span counts elsewhere and per route, every row saying whether it may miss requests.
Pure code.

- Per (region, app, version): the node figures' row (``source="nodes"``) when there is
  one; otherwise the span row (``source="spans"``, from nodes that send no figures),
  partial when nodes of its region reported dropped spans.
- By route: the span rows (spans are what know the route), each partial when the spans of
  its version cover fewer requests than the nodes answered (sampled or dropped spans),
  plus the version's exact total as route ``*``.
- Cache outcomes are only known from spans: a node figures' row takes those of its
  version's span rows (sampled, so the hit ratio holds though the counts are partial).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

from control_plane.traces.stats import StatsKey, StatsRow

ALL_ROUTES = "*"
VersionKey = tuple[str, str, str]


def _version(row: StatsRow) -> VersionKey:
    return (row.key.region, row.key.app_name, row.key.app_version)


def _order(row: StatsRow) -> tuple[str, str, str, str]:
    key = row.key
    return (key.region, key.app_name, key.app_version, key.route)


def _dropped_reason(row: StatsRow, spans_dropped: Mapping[str, int]) -> str:
    dropped = spans_dropped.get(row.key.region, 0)
    return f"nodes in {row.key.region} dropped {dropped:,} spans" if dropped else ""


def _with_reason(row: StatsRow, reason: str) -> StatsRow:
    if not reason:
        return row
    joined = f"{row.partial_reason}; {reason}" if row.partial_reason else reason
    return replace(row, partial=True, partial_reason=joined)


def _span_cache(span_rows: Sequence[StatsRow]) -> dict[VersionKey, tuple[tuple[str, int], ...]]:
    """The spans' cache outcomes of each app version, its routes added up."""
    totals: dict[VersionKey, Counter[str]] = {}
    for row in span_rows:
        totals.setdefault(_version(row), Counter()).update(dict(row.cache))
    return {key: tuple(sorted(counts.items())) for key, counts in totals.items() if counts}


def stats_rows(
    *,
    span_rows: Sequence[StatsRow],
    node_rows: Sequence[StatsRow],
    spans_dropped: Mapping[str, int],
    by_route: bool,
) -> list[StatsRow]:
    """The rows of one statistics answer, sorted by region, app, version, route."""
    cache = _span_cache(span_rows)
    exact = {
        _version(row): replace(row, cache=cache[_version(row)]) if _version(row) in cache else row
        for row in node_rows
    }
    if not by_route:
        rows = list(exact.values())
        rows.extend(
            _with_reason(row, _dropped_reason(row, spans_dropped))
            for row in span_rows
            if _version(row) not in exact
        )
        return sorted(rows, key=_order)
    covered: dict[VersionKey, int] = {}
    for row in span_rows:
        covered[_version(row)] = covered.get(_version(row), 0) + row.requests
    rows = []
    for row in span_rows:
        total = exact.get(_version(row))
        if total is None:
            rows.append(_with_reason(row, _dropped_reason(row, spans_dropped)))
            continue
        seen = covered[_version(row)]
        if seen < total.requests:
            reason = f"spans cover {seen:,} of the version's {total.requests:,} requests (sampled or dropped)"
            rows.append(_with_reason(row, reason))
        else:
            rows.append(row)
    rows.extend(
        replace(total, key=StatsKey(region=key[0], app_name=key[1], app_version=key[2], route=ALL_ROUTES))
        for key, total in exact.items()
    )
    return sorted(rows, key=_order)
