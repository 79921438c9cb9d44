"""The values the cache's policy and its stores share: a stored response and a purge.

A ``StoredResponse`` is immutable; the policy builds it (``policy.to_store``) with everything
it later needs precomputed, so a hit costs no parsing. Stores key entries by the primary
key (``policy.primary_key``) and keep several variants per key, told apart by ``vary``.
"""

from __future__ import annotations

from dataclasses import dataclass

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredResponse:
    """One stored answer and the facts RFC 9111 needs about it, computed once at store time.

    Times are seconds since the epoch on the cache's clock (``time.time()``), except
    ``date_value``, which is the origin's ``Date`` (or ``response_time`` without one).
    """

    key: str  # primary key: the request target, "/path?query" (policy.primary_key)
    status: int
    headers: Headers  # lower-case names; no hop-by-hop fields, none named in Connection, no Age
    body: bytes
    request_time: float  # when the request that fetched it was sent (RFC 9111 4.2.3)
    response_time: float  # when its answer arrived
    date_value: float
    corrected_initial_age: float  # RFC 9111 4.2.3's corrected_initial_age
    freshness_lifetime: float  # seconds; 0 for stored-but-always-validate
    heuristic: bool = False  # the lifetime is heuristic (RFC 9111 4.2.2)
    stale_while_revalidate: float = 0.0  # RFC 5861 allowance, seconds
    stale_if_error: float = 0.0  # RFC 5861 allowance, seconds
    must_revalidate: bool = False  # must-revalidate, proxy-revalidate or s-maxage: never serve stale
    no_cache: bool = False  # no-cache without field names: validate before every use
    # Secondary key (RFC 9111 4.1): for each field the response's Vary names (lower case,
    # sorted), the normalised value the storing request had ("" when absent).
    vary: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()  # from Cache-Tag / Surrogate-Key, for purge by tag
    etag: str | None = None
    last_modified: str | None = None
    # Set by a soft purge: treat as stale whatever the lifetime says (revalidate next use).
    invalidated: bool = False
    # The EdgeCDN-Cache-Control value (not in ``headers``: clients never see it), kept so a 304
    # without one recomputes freshness from the directives that governed the stored answer.
    edge_cache_control: str | None = None

    @property
    def size(self) -> int:
        """Bytes it holds, for the stores' bounds (body, headers and a fixed overhead)."""
        return len(self.body) + sum(len(k) + len(v) + 4 for k, v in self.headers) + len(self.key) + 256


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeSelector:
    """Which entries a purge covers: any entry matching any criterion. ``everything`` covers all.

    ``urls`` are primary keys ("/path?query"; a URL given with scheme and host is reduced to
    that by ``policy.primary_key_of_url``); ``prefixes`` match the key's path; ``tags`` match
    ``StoredResponse.tags``.
    """

    urls: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    everything: bool = False

    def matches(self, entry: StoredResponse) -> bool:
        if self.everything:
            return True
        if entry.key in self.urls:
            return True
        path = entry.key.partition("?")[0]
        if self.prefixes and path.startswith(self.prefixes):
            return True
        return bool(self.tags) and not set(self.tags).isdisjoint(entry.tags)

    @property
    def empty(self) -> bool:
        return not (self.everything or self.urls or self.prefixes or self.tags)
