"""A single byte range from a complete stored 200 (RFC 9110 14): 206, 416, or the whole 200.

Multiple ranges or a syntax the cache does not handle answer the whole representation,
which RFC 9110 14.2 allows (a server may ignore Range).
"""

from __future__ import annotations

from httpcache.model import Headers


def parse_single(value: str, length: int) -> tuple[int, int] | bool | None:  # noqa: PLR0911
    """(first, last) inclusive for a satisfiable single range; False when unsatisfiable;
    None when the whole representation should be sent (multiple ranges, bad syntax)."""
    unit, eq, spec = value.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    first_s, last_s = first_s.strip(), last_s.strip()
    if not dash or not (first_s.isdigit() or first_s == "") or not (last_s.isdigit() or last_s == ""):
        return None
    if first_s == "":
        if last_s == "":
            return None
        suffix = int(last_s)
        if suffix == 0 or length == 0:
            return False
        return (max(0, length - suffix), length - 1)
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None  # invalid range-spec: ignore the Range field
    if first >= length:
        return False
    last = int(last_s) if last_s else length - 1
    return (first, min(last, length - 1))


def apply(range_value: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    """(status, headers, body) answering ``Range`` from a complete 200 body."""
    length = len(body)
    r = parse_single(range_value, length)
    base = tuple((k, v) for k, v in headers if k not in ("content-length", "content-range"))
    if r is None:
        return 200, headers, body
    if r is False:
        return 416, (*base, ("content-range", f"bytes */{length}"), ("content-length", "0")), b""
    assert not isinstance(r, bool)
    first, last = r
    part = body[first : last + 1]
    return (
        206,
        (*base, ("content-range", f"bytes {first}-{last}/{length}"), ("content-length", str(len(part)))),
        part,
    )
