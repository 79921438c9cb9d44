"""Header-list helpers for the policy: lookup, hop-by-hop stripping, Vary normalisation."""

from __future__ import annotations

from collections.abc import Iterable

from httpcache.model import Headers

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
# List fields whose values are case-insensitive tokens: lower-cased in the secondary key so
# "GZIP, br" and "gzip,br" share a variant.
_CASELESS = frozenset({"accept-encoding", "accept-language", "accept-charset"})


def lower(headers: Iterable[tuple[str, str]]) -> Headers:
    return tuple((k.lower(), v) for k, v in headers)


def values(headers: Headers, name: str) -> list[str]:
    """All values of ``name`` (lower-case) in order."""
    return [v for k, v in headers if k == name]


def first(headers: Headers, name: str) -> str | None:
    for k, v in headers:
        if k == name:
            return v
    return None


def split_list(vals: Iterable[str]) -> list[str]:
    return [p.strip() for v in vals for p in v.split(",") if p.strip()]


def connection_named(headers: Headers) -> frozenset[str]:
    return frozenset(p.lower() for p in split_list(values(headers, "connection")))


def strip(headers: Headers, drop: Iterable[str]) -> Headers:
    dropped = frozenset(drop)
    return tuple((k, v) for k, v in headers if k not in dropped)


def normalise(headers: Headers, name: str) -> str:
    """The Vary-relevant value of ``name``: lines joined with ", ", whitespace collapsed."""
    vals = values(headers, name)
    if not vals:
        return ""
    if len(vals) == 1 and "," not in vals[0]:  # the common single-token case
        one = " ".join(vals[0].split())
        return one.lower() if name in _CASELESS else one
    parts = [" ".join(p.split()) for p in ",".join(vals).split(",")]
    joined = ", ".join(p for p in parts if p)
    return joined.lower() if name in _CASELESS else joined
