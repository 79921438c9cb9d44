"""Freshness lifetime and age (RFC 9111 4.2) and the RFC 5861 stale allowances.

All computed once when a response is stored (or freshened); a hit only adds ``now``.
"""

from __future__ import annotations

from httpcache import directives
from httpcache.dates import parse_http_date
from httpcache.directives import Directives

HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
HEURISTIC_FRACTION = 0.1
HEURISTIC_CAP = 86400.0


def parse_age(values: list[str]) -> float:
    """Age field value: RFC 9111 5.1 says a cache uses the first of repeated values and
    ignores an invalid one (treated as 0 here)."""
    if not values:
        return 0.0
    first = values[0].split(",")[0].strip()
    return float(int(first)) if first.isdigit() and first.isascii() else 0.0


def corrected_initial_age(
    *, age_value: float, date_value: float, request_time: float, response_time: float
) -> float:
    """RFC 9111 4.2.3."""
    apparent_age = max(0.0, response_time - date_value)
    response_delay = response_time - request_time
    corrected_age_value = age_value + response_delay
    return max(apparent_age, corrected_age_value)


def current_age(corrected_initial: float, response_time: float, now: float) -> float:
    """RFC 9111 4.2.3: corrected_initial_age + resident_time."""
    return corrected_initial + (now - response_time)


def explicit_lifetime(d: Directives, expires: str | None, date_value: float) -> float | None:
    """s-maxage > max-age > Expires - Date (RFC 9111 4.2.1); None when none given.

    An invalid max-age / s-maxage, or an invalid Expires, means already stale (0).
    """
    for name in ("s-maxage", "max-age"):
        if name in d:
            value = directives.delta(d, name)
            return 0.0 if value is None else value
    if expires is not None:
        exp = parse_http_date(expires)
        return 0.0 if exp is None else max(0.0, exp - date_value)
    return None


def heuristic_lifetime(status: int, last_modified: str | None, date_value: float) -> float:
    """10% of Date - Last-Modified, capped at one day (RFC 9111 4.2.2); 0 when not allowed."""
    if status not in HEURISTIC_STATUSES or last_modified is None:
        return 0.0
    lm = parse_http_date(last_modified)
    if lm is None or lm >= date_value:
        return 0.0
    return min(HEURISTIC_CAP, (date_value - lm) * HEURISTIC_FRACTION)


def stale_allowance(d: Directives, name: str) -> float:
    """stale-while-revalidate / stale-if-error seconds (RFC 5861); 0 when absent or invalid."""
    return directives.delta(d, name) or 0.0
