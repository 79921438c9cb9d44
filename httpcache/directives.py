"""Cache-Control parsing (RFC 9111 5.2, RFC 9110 5.6) and targeted fields (RFC 9213).

Directives are ``name[=token|quoted-string]``, comma separated, names case-insensitive.
The first occurrence of a duplicated directive wins (RFC 9111 4.2.1 lets a cache pick; the
first is what most caches do). An invalid delta-seconds argument is reported as ``None`` in
``delta`` so callers apply the RFC fallback (max-age invalid -> stale, RFC 9111 4.2.1).
"""

from __future__ import annotations

from collections.abc import Iterable

Directives = dict[str, str | None]

# Highest-priority first: only this CDN obeys EdgeCDN-Cache-Control (RFC 9213 2.2).
TARGETED = ("edgecdn-cache-control", "cdn-cache-control")


def _split(value: str) -> list[str]:
    """Split on commas outside quoted-strings."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            cur.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _unquote(arg: str) -> str:
    if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
        it = iter(arg[1:-1])
        return "".join(next(it, "") if ch == "\\" else ch for ch in it)
    return arg


def parse(values: Iterable[str]) -> Directives:
    """Parse one or more Cache-Control field lines into {name: argument or None}."""
    out: Directives = {}
    for value in values:
        for part in _split(value):
            name, eq, arg = part.strip().partition("=")
            name = name.strip().lower()
            if not name or name in out:
                continue
            out[name] = _unquote(arg.strip()) if eq else None
    return out


def delta(d: Directives, name: str) -> float | None:
    """delta-seconds of ``name``: None when absent or invalid (digits only, RFC 9111 1.2.2)."""
    arg = d.get(name)
    if arg is None or not arg.isdigit() or not arg.isascii():
        return None
    return float(min(int(arg), 2**31))


def field_names(d: Directives, name: str) -> tuple[str, ...]:
    """The field-name list of a qualified no-cache / private ("" -> none)."""
    arg = d.get(name)
    if not arg:
        return ()
    return tuple(sorted({f.strip().lower() for f in arg.split(",") if f.strip()}))


def for_cache(headers: Iterable[tuple[str, str]]) -> Directives:
    """The directives this cache obeys: the highest-priority targeted field present wins whole
    (RFC 9213 2.1: a cache that uses a targeted field ignores Cache-Control)."""
    by_name: dict[str, list[str]] = {}
    for k, v in headers:
        by_name.setdefault(k.lower(), []).append(v)
    for name in TARGETED:
        if name in by_name:
            return parse(by_name[name])
    return parse(by_name.get("cache-control", ()))
