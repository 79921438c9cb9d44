"""What the head of an answer says, read straight from its bytes (no header parsing).

- the serving region: ``x-edge-route: region=<id>; ...`` (the router), else ``x-edge-region``;
- the app version that answered: ``x-edge-app: NAME@VERSION`` (edge nodes; absent on
  answers with no app and from older nodes), interned by :class:`AppVersions`;
- the HTTP cache's outcome: ``x-cache: HIT|MISS|STALE|REVALIDATED|BYPASS`` (edge nodes;
  absent on answers that never went through the cache);
- any other header's value, lower-cased (``connection``, ``content-length``, ...).

The client calls these once per answer: each is a ``find`` over the head and a slice.
"""

from __future__ import annotations

import sys

APP_HEADER = b"\r\nx-edge-app:"
MAX_APP_VERSIONS = 64  # distinct x-edge-app values told apart; a server inventing more is "other"
OTHER_VERSION = "other"
CACHE_HEADER = b"\r\nx-cache:"
CACHE_RESULTS = ("HIT", "MISS", "STALE", "REVALIDATED", "BYPASS")
_CACHE_NAMES = {name.lower().encode(): name for name in CACHE_RESULTS}
OTHER_CACHE = "OTHER"  # a value the edge node does not send: counted, not told apart


def serving_region(head_lower: bytes, head: bytes) -> str:
    """The region from ``x-edge-route: region=<id>; ...`` (router), else ``x-edge-region``."""
    start = head_lower.find(b"\r\nx-edge-route:")
    if start >= 0:
        end = head_lower.find(b"\r\n", start + 2)
        value = head[start + 15 : end if end >= 0 else len(head)]
        for part in value.split(b";"):
            key, _, val = part.strip().partition(b"=")
            if key.lower() == b"region" and val:
                return val.strip().decode("latin-1")
    start = head_lower.find(b"\r\nx-edge-region:")
    if start >= 0:
        end = head_lower.find(b"\r\n", start + 2)
        return head[start + 16 : end if end >= 0 else len(head)].strip().decode("latin-1")
    return ""


class AppVersions:
    """Interns ``x-edge-app`` values: the raw bytes of a header map to one shared ``str``.

    A run sees a handful of versions in millions of answers, so each answer costs a slice
    and a dict lookup, and the recorder's counters hash the same few string objects. At
    most ``limit`` distinct values are kept; later ones count as ``other``.
    """

    def __init__(self, limit: int = MAX_APP_VERSIONS) -> None:
        self._names: dict[bytes, str] = {}
        self._limit = limit

    def name(self, raw: bytes) -> str:
        """``raw`` is the header's value as received (surrounding spaces included)."""
        name = self._names.get(raw)
        if name is None:
            name = self._add(raw)
        return name

    def _add(self, raw: bytes) -> str:
        if len(self._names) >= self._limit:
            return OTHER_VERSION
        name = self._names[raw] = sys.intern(raw.strip().decode("latin-1"))
        return name


def app_version(head_lower: bytes, head: bytes, versions: AppVersions) -> str:
    """The answer's ``x-edge-app`` value (``NAME@VERSION``), or ``""`` without the header."""
    start = head_lower.find(APP_HEADER)
    if start < 0:
        return ""
    end = head_lower.find(b"\r\n", start + 2)
    return versions.name(head[start + len(APP_HEADER) : end if end >= 0 else len(head)])


def cache_result(head_lower: bytes) -> str:
    """The answer's ``x-cache`` outcome (one of ``CACHE_RESULTS``), or ``""`` without one."""
    start = head_lower.find(CACHE_HEADER)
    if start < 0:
        return ""
    end = head_lower.find(b"\r\n", start + 2)
    raw = head_lower[start + len(CACHE_HEADER) : end if end >= 0 else len(head_lower)].strip()
    return _CACHE_NAMES.get(raw, OTHER_CACHE)


def header_value(head_lower: bytes, name: bytes) -> bytes | None:
    start = head_lower.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    end = head_lower.find(b"\r\n", start + 2)
    return head_lower[start + len(name) + 3 : end if end >= 0 else len(head_lower)].strip()
