"""HTTP-date parsing (RFC 9110 5.6.7): IMF-fixdate plus the obsolete RFC 850 and asctime forms.

Anything else is invalid and yields None. Parsed at store time only, never on a plain hit.
"""

from __future__ import annotations

import calendar
import re
import time

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LDAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MON = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"(\d\d):(\d\d):(\d\d)"
_IMF = re.compile(rf"{_DAY}, (\d\d) {_MON} (\d{{4}}) {_TIME} GMT")
_RFC850 = re.compile(rf"{_LDAY}, (\d\d)-{_MON}-(\d\d) {_TIME} GMT")
_ASCTIME = re.compile(rf"{_DAY} {_MON} ([ \d]\d) {_TIME} (\d{{4}})")


def _epoch(year: int, month: int, day: int, hh: int, mm: int, ss: int) -> float | None:  # noqa: PLR0917
    if hh > 23 or mm > 59 or ss > 60 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return float(calendar.timegm((year, month, day, hh, mm, min(ss, 59), 0, 0, 0)))


def parse_http_date(value: str | None, now: float | None = None) -> float | None:
    """Seconds since the epoch, or None when ``value`` is not a valid HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    if m := _IMF.fullmatch(value):
        d, mon, y, hh, mi, ss = m.groups()
        return _epoch(int(y), _MONTHS[mon], int(d), int(hh), int(mi), int(ss))
    if m := _RFC850.fullmatch(value):
        d, mon, yy, hh, mi, ss = m.groups()
        # RFC 9110 5.6.7: a two-digit year more than 50 years in the future is in the past century.
        this_year = time.gmtime(now if now is not None else time.time()).tm_year
        year = this_year // 100 * 100 + int(yy)
        if year > this_year + 50:
            year -= 100
        return _epoch(year, _MONTHS[mon], int(d), int(hh), int(mi), int(ss))
    if m := _ASCTIME.fullmatch(value):
        mon, d, hh, mi, ss, y = m.groups()
        return _epoch(int(y), _MONTHS[mon], int(d.strip()), int(hh), int(mi), int(ss))
    return None


def format_http_date(t: float) -> str:
    """IMF-fixdate."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(t))
