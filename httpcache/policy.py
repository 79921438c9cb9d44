"""RFC 9111 decisions for a shared cache: pure functions over ``model`` values, no I/O.

CONTRACT (the edge node is written against these signatures; keep them):

    primary_key(path, query) -> str
    primary_key_of_url(url) -> str
    read_request(method, path, query, headers) -> CacheRequest
    select(request, variants, now) -> Selection
    answer(request, entry, now) -> Answer
    upstream_headers(request, entry) -> Headers
    to_store(request, status, headers, body, *, request_time, response_time) -> StoredResponse | None
    freshen(entry, headers_304, *, request_time, response_time) -> StoredResponse
    may_serve_stale_on_error(request, entry, now, *, unreachable) -> bool
    invalidation_keys(request, status, response_headers) -> tuple[str, ...]
    client_headers(headers) -> Headers
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urljoin, urlsplit

from httpcache import directives, freshness, ranges
from httpcache.dates import parse_http_date
from httpcache.headers import HOP_BY_HOP, connection_named, first, lower, normalise, split_list, strip, values
from httpcache.model import Headers, StoredResponse

# x-cache values the node sends; the load report counts them per country.
HIT, MISS, STALE, REVALIDATED, BYPASS = "HIT", "MISS", "STALE", "REVALIDATED", "BYPASS"


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheRequest:
    """A request as the cache sees it, parsed once."""

    method: str  # upper case, as received
    key: str  # primary_key(path, query)
    headers: Headers  # lower-case names, as received (order and repeats kept)
    cacheable: bool  # GET or HEAD: may be answered from / stored in the cache
    unsafe: bool  # a method that invalidates (RFC 9111 4.4): anything but GET, HEAD, OPTIONS, TRACE
    no_store: bool = False
    no_cache: bool = False  # request no-cache (or Pragma: no-cache without Cache-Control)
    max_age: float | None = None
    max_stale: float | None = None  # math.inf for a bare max-stale
    min_fresh: float | None = None
    only_if_cached: bool = False
    authorization: bool = False  # RFC 9111 3.5


class Action(enum.Enum):
    FRESH = "fresh"  # serve the entry
    STALE_WHILE_REVALIDATE = "swr"  # serve the entry (x-cache STALE) and refresh it in the background
    STALE = "stale"  # serve the stale entry: the client's max-stale allows it
    REVALIDATE = "revalidate"  # ask upstream with the entry's validators (upstream_headers)
    MISS = "miss"  # no usable entry: fetch (entry may still be set: a stale variant to fall back on)
    GATEWAY_TIMEOUT = "gateway-timeout"  # only-if-cached and nothing usable: answer 504


@dataclass(frozen=True, slots=True)
class Selection:
    action: Action
    entry: StoredResponse | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What the client gets from a stored entry: 200/304/206/416..., headers with Age, body."""

    status: int
    headers: Headers
    body: bytes


_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Never stored: hop-by-hop (RFC 9110 7.6.1), Age (recomputed), our own targeted field.
# Purge tags are the CDN's, as Fastly's Surrogate-Key and Cloudflare's Cache-Tag: kept with
# the entry (``StoredResponse.tags``), never sent on to clients.
TAG_FIELDS = frozenset({"cache-tag", "surrogate-key"})
_NOT_STORED = HOP_BY_HOP | {"age", "edgecdn-cache-control"} | TAG_FIELDS
# RFC 9111 3.2: a 304 never updates these (Content-Length describes the stored body).
_NOT_FRESHENED = _NOT_STORED | {"content-length"}
# RFC 9110 15.4.5: what a 304 carries from the 200 it stands for.
_304_FIELDS = frozenset({"content-location", "date", "etag", "vary", "cache-control", "expires"})
_ONE_DAY = 86400.0


def primary_key(path: str, query: str) -> str:
    return path + ("?" + query if query else "")


def primary_key_of_url(url: str) -> str:
    """ "/p?q" or "http(s)://host[:port]/p?q" -> "/p?q" (fragment dropped)."""
    parts = urlsplit(url)
    return primary_key(parts.path or "/", parts.query)


def read_request(method: str, path: str, query: str, headers: Iterable[tuple[str, str]]) -> CacheRequest:
    method = method.upper()
    # One pass over the fields: this runs on every request, hits included.
    hs_list: list[tuple[str, str]] = []
    cc_lines: list[str] = []
    pragma_no_cache = authorization = False
    for k, v in headers:
        name = k.lower()
        hs_list.append((name, v))
        if name == "cache-control":
            cc_lines.append(v)
        elif name == "pragma":
            pragma_no_cache = pragma_no_cache or "no-cache" in v.lower()
        elif name == "authorization":
            authorization = True
    hs = tuple(hs_list)
    no_store = only_if_cached = False
    no_cache = pragma_no_cache  # RFC 9111 5.4: Pragma only counts without Cache-Control
    max_age: float | None = None
    max_stale: float | None = None  # math.inf for a bare max-stale
    min_fresh: float | None = None
    if cc_lines:
        d = directives.parse(cc_lines)
        if "max-stale" in d:
            max_stale = math.inf if d["max-stale"] is None else directives.delta(d, "max-stale")
        no_store = "no-store" in d
        no_cache = "no-cache" in d
        max_age = directives.delta(d, "max-age")
        min_fresh = directives.delta(d, "min-fresh")
        only_if_cached = "only-if-cached" in d
    return CacheRequest(
        method=method,
        key=primary_key(path, query),
        headers=hs,
        cacheable=method in ("GET", "HEAD"),
        unsafe=method not in _SAFE,
        no_store=no_store,
        no_cache=no_cache,
        max_age=max_age,
        max_stale=max_stale,
        min_fresh=min_fresh,
        only_if_cached=only_if_cached,
        authorization=authorization,
    )


def _vary_matches(request: CacheRequest, entry: StoredResponse) -> bool:
    return all(normalise(request.headers, name) == value for name, value in entry.vary)


def select(request: CacheRequest, variants: Sequence[StoredResponse], now: float) -> Selection:  # noqa: PLR0911
    """The variant matching the request's Vary fields and what to do with it (RFC 9111 4)."""
    miss = Action.GATEWAY_TIMEOUT if request.only_if_cached else Action.MISS
    if not request.cacheable:
        return Selection(Action.MISS)
    entry = next((v for v in variants if _vary_matches(request, v)), None)
    if entry is None:
        return Selection(miss)
    validate = Action.REVALIDATE if (entry.etag is not None or entry.last_modified is not None) else miss
    if request.only_if_cached and validate is Action.REVALIDATE:
        validate = Action.GATEWAY_TIMEOUT
    if request.no_cache or entry.no_cache or entry.invalidated:
        return Selection(validate, entry)
    age = entry.corrected_initial_age + (now - entry.response_time)
    lifetime = entry.freshness_lifetime
    if age < lifetime:
        if (request.max_age is None or age <= request.max_age) and (
            request.min_fresh is None or lifetime - age >= request.min_fresh
        ):
            return Selection(Action.FRESH, entry)
        return Selection(validate, entry)  # fresh, but not fresh enough for this client
    if not entry.must_revalidate:
        staleness = age - lifetime
        if staleness < entry.stale_while_revalidate and request.max_age is None and request.min_fresh is None:
            return Selection(Action.STALE_WHILE_REVALIDATE, entry)
        if request.max_stale is not None and staleness <= request.max_stale:
            return Selection(Action.STALE, entry)
    return Selection(validate, entry)


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag.removeprefix("W/")


def _not_modified(request: CacheRequest, entry: StoredResponse) -> bool:
    """RFC 9110 13.2.2: If-None-Match (weak comparison) first, else If-Modified-Since."""
    inm = values(request.headers, "if-none-match")
    if inm:
        tags = split_list(inm)
        if "*" in tags:
            return True
        return entry.etag is not None and _opaque(entry.etag) in {_opaque(t) for t in tags}
    ims = first(request.headers, "if-modified-since")
    if ims is None:
        return False
    since = parse_http_date(ims)
    if since is None:
        return False  # invalid date: ignore the field (RFC 9110 13.1.3)
    lm = parse_http_date(entry.last_modified) if entry.last_modified is not None else None
    modified: float = lm if lm is not None else entry.date_value
    return modified <= since


def _if_range_ok(request: CacheRequest, entry: StoredResponse) -> bool:
    value = first(request.headers, "if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):  # strong comparison (RFC 9110 13.1.5)
        return entry.etag is not None and not entry.etag.startswith("W/") and entry.etag == value
    return entry.last_modified is not None and value == entry.last_modified


def answer(request: CacheRequest, entry: StoredResponse, now: float) -> Answer:
    """The client's answer from ``entry``: 304 for a matching conditional, 206/416 for Range.
    For HEAD the body stays in: the response writer drops it and keeps its content-length."""
    age = ("age", str(max(0, int(entry.corrected_initial_age + (now - entry.response_time)))))
    conditional = _has(request.headers, ("if-none-match", "if-modified-since"))
    if conditional and 200 <= entry.status < 300 and _not_modified(request, entry):
        kept = tuple((k, v) for k, v in entry.headers if k in _304_FIELDS)
        return Answer(304, (*kept, age), b"")
    status, headers, body = entry.status, entry.headers, entry.body
    if entry.status == 200 and request.method == "GET":
        rng = first(request.headers, "range")
        if rng is not None and _if_range_ok(request, entry):
            status, headers, body = ranges.apply(rng, headers, body)
    # HEAD keeps the body: the writer drops it and sends its length as content-length.
    return Answer(status, (*headers, age), body)


def _has(headers: Headers, names: tuple[str, ...]) -> bool:
    return any(k in names for k, _ in headers)


def upstream_headers(request: CacheRequest, entry: StoredResponse | None) -> Headers:
    """Request headers for the origin. A cacheable request drops its own conditionals and
    Range (the cache fetches whole answers and answers those itself); unsafe ones keep theirs."""
    hs = request.headers
    if request.cacheable:
        hs = strip(hs, ("if-none-match", "if-modified-since", "if-range", "range"))
    if entry is not None:
        if entry.etag is not None:
            hs = (*hs, ("if-none-match", entry.etag))
        if entry.last_modified is not None:
            hs = (*hs, ("if-modified-since", entry.last_modified))
    return hs


def _build(
    *,
    key: str,
    status: int,
    headers: Headers,
    body: bytes,
    vary: tuple[tuple[str, str], ...],
    request_time: float,
    response_time: float,
    age_values: list[str],
    edge: str | None,
    tags: tuple[str, ...],
) -> StoredResponse:
    """Everything a hit needs, precomputed from stored (already stripped) headers and our own
    targeted field, which is not stored among them."""
    d = directives.for_cache(headers if edge is None else (*headers, ("edgecdn-cache-control", edge)))
    date_value = parse_http_date(first(headers, "date"))
    if date_value is None:
        date_value = response_time
    lifetime = freshness.explicit_lifetime(d, first(headers, "expires"), date_value)
    heuristic = lifetime is None
    if lifetime is None:
        lm = first(headers, "last-modified")
        lifetime = freshness.heuristic_lifetime(200 if "public" in d else status, lm, date_value)
    return StoredResponse(
        key=key,
        status=status,
        headers=headers,
        body=body,
        request_time=request_time,
        response_time=response_time,
        date_value=date_value,
        corrected_initial_age=freshness.corrected_initial_age(
            age_value=freshness.parse_age(age_values),
            date_value=date_value,
            request_time=request_time,
            response_time=response_time,
        ),
        freshness_lifetime=lifetime,
        heuristic=heuristic,
        stale_while_revalidate=freshness.stale_allowance(d, "stale-while-revalidate"),
        stale_if_error=freshness.stale_allowance(d, "stale-if-error"),
        must_revalidate=any(n in d for n in ("must-revalidate", "proxy-revalidate", "s-maxage")),
        no_cache="no-cache" in d and not directives.field_names(d, "no-cache"),
        vary=vary,
        tags=tags,
        etag=first(headers, "etag"),
        last_modified=first(headers, "last-modified"),
        edge_cache_control=edge,
    )


def tags_of(headers: Headers) -> tuple[str, ...]:
    """An answer's purge tags: ``Cache-Tag`` (comma-separated) and ``Surrogate-Key`` (space-separated)."""
    tags = [*split_list(values(headers, "cache-tag"))]
    tags += [t for v in values(headers, "surrogate-key") for t in v.split()]
    return tuple(dict.fromkeys(tags))


def _edge(headers: Headers) -> str | None:
    vals = values(headers, "edgecdn-cache-control")
    return ", ".join(vals) if vals else None


def to_store(  # noqa: PLR0911 (one return per RFC 9111 3 rule)
    request: CacheRequest,
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    request_time: float,
    response_time: float,
) -> StoredResponse | None:
    """The entry to store for this answer, or None when RFC 9111 3 forbids storing it."""
    if request.method != "GET" or request.no_store or status in (206, 304):
        return None
    hs = lower(headers)
    d = directives.for_cache(hs)
    if "no-store" in d:
        return None
    private = directives.field_names(d, "private")
    if "private" in d and not private:
        return None
    public = "public" in d
    if request.authorization and not (public or "s-maxage" in d or "must-revalidate" in d):
        return None
    if any(k == "set-cookie" for k, _ in hs) and not public:
        return None  # conservative: a personalised answer is not shared
    vary_names = sorted({n.lower() for n in split_list(values(hs, "vary"))})
    if "*" in vary_names:
        return None
    has_expiry = any(n in d for n in ("s-maxage", "max-age")) or first(hs, "expires") is not None
    if not (has_expiry or public or status in freshness.HEURISTIC_STATUSES):
        return None
    # no-cache with field names: those fields may not be reused unvalidated, so drop them.
    drop = _NOT_STORED | connection_named(hs) | set(private) | set(directives.field_names(d, "no-cache"))
    return _build(
        key=request.key,
        status=status,
        headers=strip(hs, drop),
        body=body,
        vary=tuple((n, normalise(request.headers, n)) for n in vary_names),
        request_time=request_time,
        response_time=response_time,
        age_values=values(hs, "age"),
        edge=_edge(hs),
        tags=tags_of(hs),
    )


def freshen(
    entry: StoredResponse,
    headers_304: Iterable[tuple[str, str]],
    *,
    request_time: float,
    response_time: float,
) -> StoredResponse:
    """Merge a 304's fields into the stored response and recompute (RFC 9111 3.2, 4.3.4)."""
    new = lower(headers_304)
    new_fields = strip(new, _NOT_FRESHENED | connection_named(new))
    names = {k for k, _ in new_fields}
    merged = tuple((k, v) for k, v in entry.headers if k not in names) + new_fields
    fresh = _build(
        key=entry.key,
        status=entry.status,
        headers=merged,
        body=entry.body,
        vary=entry.vary,
        request_time=request_time,
        response_time=response_time,
        age_values=values(new, "age"),
        edge=_edge(new) or entry.edge_cache_control,
        tags=tags_of(new) or entry.tags,
    )
    return replace(fresh, invalidated=False)


def may_serve_stale_on_error(
    request: CacheRequest, entry: StoredResponse, now: float, *, unreachable: bool
) -> bool:
    """RFC 5861 stale-if-error, or a disconnected origin (RFC 9111 4.2.4) up to a day stale."""
    if entry.must_revalidate:
        return False
    staleness = entry.corrected_initial_age + (now - entry.response_time) - entry.freshness_lifetime
    allowance = entry.stale_if_error
    cc = values(request.headers, "cache-control")
    if cc:
        allowance = max(allowance, directives.delta(directives.parse(cc), "stale-if-error") or 0.0)
    if staleness <= allowance:
        return True
    return unreachable and not entry.no_cache and staleness <= _ONE_DAY


def invalidation_keys(
    request: CacheRequest, status: int, response_headers: Iterable[tuple[str, str]]
) -> tuple[str, ...]:
    """Keys an unsafe request's non-error answer invalidates (RFC 9111 4.4)."""
    if not request.unsafe or not 200 <= status < 400:
        return ()
    hs = lower(response_headers)
    host = (first(request.headers, "host") or "").strip().lower()
    base = "http://" + (host or "invalid") + request.key
    keys = [request.key]
    for name in ("location", "content-location"):
        value = first(hs, name)
        if value is None:
            continue
        target = urlsplit(urljoin(base, value.strip()))
        if target.scheme in ("http", "https") and target.netloc.lower() == (host or "invalid"):
            keys.append(primary_key(target.path or "/", target.query))
    return tuple(dict.fromkeys(keys))


def client_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    """The answer's headers for the client: our targeted field and the purge tags are ours."""
    return tuple((k, v) for k, v in headers if k.lower() not in _FOR_THE_CACHE_ONLY)


_FOR_THE_CACHE_ONLY = TAG_FIELDS | {"edgecdn-cache-control"}
