"""Checks on the response header fields a guest hands back, shared by both ABIs.

A guest must not be able to break the framing of the HTTP response the node writes, so
names must be RFC 9110 tokens, values free of control characters, and hop-by-hop or framing
fields are refused: the server that writes the response owns them.
"""

from __future__ import annotations

import re

MAX_RESPONSE_HEADERS = 100

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# HTAB is the only control character a field value may carry (RFC 9110 section 5.5).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)


def is_token(name: str) -> bool:
    """True when ``name`` is an RFC 9110 token (the only valid header names)."""
    return _TOKEN.fullmatch(name) is not None


def has_control(value: str) -> bool:
    """True when a field value holds a control character other than HTAB."""
    return _BAD_VALUE.search(value) is not None


def field_problem(name: str, value: str) -> str | None:
    """Why ``name: value`` (name in lower case) cannot go on to a client, or None when it can."""
    if name in HOP_BY_HOP:
        return f"hop-by-hop header {name!r} is not allowed"
    if _BAD_VALUE.search(value):
        return f"header {name!r} has a control character in its value"
    if not _TOKEN.fullmatch(name):
        return f"header name {name!r} is not a token"
    return None


def status_problem(status: int) -> str | None:
    """Why ``status`` is not a final HTTP status a handler may answer with, or None."""
    if not 200 <= status <= 599:
        return f"status {status} is outside 200..599"
    return None
