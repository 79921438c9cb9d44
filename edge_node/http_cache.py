"""The shared HTTP cache for origin routes: policy (RFC 9111, shared-cache rules) and store.

Pure code: the clock is passed in, nothing here does I/O. A response is stored only when
the origin said it may be shared (``s-maxage``/``max-age``/``Expires``, nothing
``private`` or ``no-store``, no ``Set-Cookie``, no ``Vary: *``). The store is an LRU
bounded by bytes, and purges by path prefix serve the control plane's CachePurge.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

CACHEABLE_METHODS = frozenset({"GET", "HEAD"})
# Statuses a shared cache may store when the origin gave explicit freshness (RFC 9110 15.1).
CACHEABLE_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
# Hop-by-hop and per-response fields that must not be replayed from cache.
UNSTORED_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "date"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheKey:
    method: str
    path: str
    query: str

    @classmethod
    def for_request(cls, method: str, path: str, query: str) -> CacheKey:
        # HEAD is answered from the GET entry.
        return cls(method="GET" if method == "HEAD" else method, path=path, query=query)


@dataclass(frozen=True, slots=True, kw_only=True)
class CachedResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float
    expires_at: float

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers)

    def age(self, now: float) -> int:
        return max(0, int(now - self.stored_at))


def cache_control(value: str | None) -> dict[str, str]:
    """Parse a Cache-Control field into lower-case directive -> argument ('' when none)."""
    directives: dict[str, str] = {}
    for part in (value or "").split(","):
        name, _, argument = part.strip().partition("=")
        if name:
            directives[name.strip().lower()] = argument.strip().strip('"')
    return directives


def request_allows_cache(method: str, headers: Mapping[str, str]) -> bool:
    """Whether a request may be answered from (and its response stored in) the cache."""
    if method not in CACHEABLE_METHODS or "authorization" in headers:
        return False
    directives = cache_control(headers.get("cache-control"))
    return "no-store" not in directives and "no-cache" not in directives


def freshness_lifetime(status: int, headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds a shared cache may serve this response, or None when it must not store it."""
    if not _shareable(status, headers):
        return None
    lifetime = _explicit_lifetime(headers, now=now)
    return None if lifetime is None else _minus_age(lifetime, headers)


def _shareable(status: int, headers: Mapping[str, str]) -> bool:
    if status not in CACHEABLE_STATUSES or "set-cookie" in headers:
        return False
    if headers.get("vary", "").strip() == "*":
        return False
    return not {"no-store", "private", "no-cache"} & cache_control(headers.get("cache-control")).keys()


def _explicit_lifetime(headers: Mapping[str, str], *, now: float) -> float | None:
    """What the origin said: s-maxage, then max-age, then Expires (RFC 9111 4.2.1)."""
    directives = cache_control(headers.get("cache-control"))
    for name in ("s-maxage", "max-age"):
        if name in directives:
            try:
                return float(int(directives[name]))
            except ValueError:
                return None
    expires = headers.get("expires")
    if not expires:
        return None
    try:
        return parsedate_to_datetime(expires).timestamp() - now
    except (TypeError, ValueError):
        return None  # an invalid Expires means "already expired" (RFC 9111 5.3)


def _minus_age(lifetime: float, headers: Mapping[str, str]) -> float | None:
    try:
        age = max(0, int(headers.get("age", "0")))
    except ValueError:
        age = 0
    remaining = lifetime - age
    return remaining if remaining > 0 else None


class ResponseCache:
    """An LRU of fresh responses bounded by total bytes; entries over ``max_entry_bytes`` are skipped."""

    def __init__(self, *, max_bytes: int, max_entry_bytes: int) -> None:
        if max_bytes < 0 or max_entry_bytes < 0:
            raise ValueError("cache sizes must not be negative")
        self._max_bytes = max_bytes
        self._max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[CacheKey, CachedResponse] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: CacheKey, *, now: float) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(
        self, key: CacheKey, *, status: int, headers: Iterable[tuple[str, str]], body: bytes, now: float
    ) -> CachedResponse | None:
        """Store the response if policy and size allow; returns the stored entry."""
        header_list = tuple((k.lower(), v) for k, v in headers)
        header_map = dict(header_list)
        lifetime = freshness_lifetime(status, header_map, now=now)
        if lifetime is None:
            return None
        entry = CachedResponse(
            status=status,
            headers=tuple((k, v) for k, v in header_list if k not in UNSTORED_HEADERS and k != "age"),
            body=body,
            stored_at=now,
            expires_at=now + lifetime,
        )
        if entry.size > min(self._max_entry_bytes, self._max_bytes):
            return None
        if key in self._entries:
            self._remove(key)
        self._entries[key] = entry
        self._bytes += entry.size
        while self._bytes > self._max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)
        return entry

    def purge(self, *, path_prefixes: Iterable[str] = (), everything: bool = False) -> int:
        """Drop matching entries; returns how many were dropped."""
        prefixes = tuple(path_prefixes)
        doomed = [key for key in self._entries if everything or key.path.startswith(prefixes)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def _remove(self, key: CacheKey) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size
