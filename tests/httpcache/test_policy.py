"""RFC 9111 decisions of httpcache.policy, table-driven."""

import math
from dataclasses import replace

import pytest

from httpcache import policy
from httpcache.dates import format_http_date
from httpcache.model import StoredResponse
from httpcache.policy import Action

T0 = 1_700_000_000.0
DATE = format_http_date(T0)
LM = format_http_date(T0 - 10_000)


def req(method: str = "GET", target: str = "/a", *headers: tuple[str, str]) -> policy.CacheRequest:
    path, _, query = target.partition("?")
    return policy.read_request(method, path, query, headers)


def store(
    status: int = 200,
    *headers: tuple[str, str],
    request: policy.CacheRequest | None = None,
    body: bytes = b"hello",
) -> StoredResponse | None:
    return policy.to_store(
        request or req(), status, (("Date", DATE), *headers), body, request_time=T0, response_time=T0
    )


def stored(*headers: tuple[str, str], **kw: object) -> StoredResponse:
    e = store(200, *headers, **kw)  # type: ignore[arg-type]
    assert e is not None
    return e


def test_keys() -> None:
    assert policy.primary_key("/p", "") == "/p"
    assert policy.primary_key("/p", "q=1") == "/p?q=1"
    assert policy.primary_key_of_url("https://h:8443/p?q=1") == "/p?q=1"
    assert policy.primary_key_of_url("/p?q=1") == "/p?q=1"
    assert policy.primary_key_of_url("http://h") == "/"


def test_read_request() -> None:
    r = req(
        "get", "/a?b", ("Cache-Control", "max-stale, min-fresh=5, only-if-cached"), ("Authorization", "x")
    )
    assert (r.method, r.key, r.cacheable, r.unsafe) == ("GET", "/a?b", True, False)
    assert r.max_stale == math.inf
    assert r.min_fresh == 5
    assert r.only_if_cached
    assert r.authorization
    assert req("GET", "/", ("Pragma", "no-cache")).no_cache
    assert not req("GET", "/", ("Pragma", "no-cache"), ("Cache-Control", "max-age=5")).no_cache
    assert req("POST").unsafe
    assert not req("POST").cacheable
    assert not req("OPTIONS").unsafe


@pytest.mark.parametrize(
    ("status", "headers", "storable"),
    [
        (200, [("Cache-Control", "max-age=60")], True),
        (200, [("Cache-Control", "no-store, max-age=60")], False),
        (200, [("Cache-Control", "private")], False),
        (200, [("Cache-Control", 'private="x-user", max-age=5'), ("X-User", "bob")], True),
        (200, [("Vary", "*"), ("Cache-Control", "max-age=60")], False),
        (302, [], False),
        (302, [("Cache-Control", "max-age=60")], True),
        (503, [("Cache-Control", "max-age=5")], True),
        (307, [("Cache-Control", "public")], True),
        (404, [], True),
        (206, [("Cache-Control", "max-age=60")], False),
        (304, [("Cache-Control", "max-age=60")], False),
        (200, [("Set-Cookie", "a=b"), ("Cache-Control", "max-age=60")], False),
        (200, [("Set-Cookie", "a=b"), ("Cache-Control", "public, max-age=60")], True),
        (200, [("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")], True),
        (200, [("CDN-Cache-Control", "max-age=60"), ("EdgeCDN-Cache-Control", "no-store")], False),
    ],
)
def test_to_store_rules(status: int, headers: list[tuple[str, str]], storable: bool) -> None:
    assert (store(status, *headers) is not None) == storable


def test_to_store_request_rules() -> None:
    assert (
        store(200, ("Cache-Control", "max-age=60"), request=req("GET", "/a", ("Cache-Control", "no-store")))
        is None
    )
    auth = req("GET", "/a", ("Authorization", "x"))
    assert store(200, ("Cache-Control", "max-age=60"), request=auth) is None
    assert store(200, ("Cache-Control", "s-maxage=60"), request=auth) is not None
    assert store(200, ("Cache-Control", "max-age=60"), request=req("HEAD")) is None


def test_stored_fields() -> None:
    e = stored(
        ("Cache-Control", "no-store"),
        (
            "EdgeCDN-Cache-Control",
            'max-age=60, stale-while-revalidate=30, stale-if-error=300, private="X-User"',
        ),
        ("Connection", "close, X-Hop"),
        ("X-Hop", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Age", "4"),
        ("CDN-Cache-Control", "max-age=5"),
        ("X-User", "bob"),
        ("ETag", '"v1"'),
        ("Last-Modified", LM),
        ("Cache-Tag", "a, b"),
        ("Surrogate-Key", "c  a"),
        ("Vary", "Accept-Encoding, accept-encoding, X-B"),
        request=req("GET", "/a", ("Accept-Encoding", "GZIP,  br"), ("Accept-Encoding", "zstd")),
    )
    names = {k for k, _ in e.headers}
    assert names == {
        "date",
        "cache-control",
        "cdn-cache-control",
        "etag",
        "last-modified",
        "vary",
    }  # the purge tags are kept in ``tags``, never replayed to clients
    assert e.freshness_lifetime == 60
    assert e.corrected_initial_age == 4
    assert (e.stale_while_revalidate, e.stale_if_error) == (30, 300)
    assert e.vary == (("accept-encoding", "gzip, br, zstd"), ("x-b", ""))
    assert e.tags == ("a", "b", "c")
    assert (e.etag, e.last_modified, e.date_value) == ('"v1"', LM, T0)
    assert not e.must_revalidate
    assert not e.no_cache
    assert e.edge_cache_control is not None
    # A 304 without the targeted field keeps the directives that governed the stored answer.
    f = policy.freshen(e, [("ETag", '"v1"')], request_time=T0 + 1, response_time=T0 + 1)
    assert f.freshness_lifetime == 60
    assert f.stale_if_error == 300
    assert e.edge_cache_control is not None
    # A 304 without the targeted field keeps the directives that governed the stored answer.
    f = policy.freshen(e, [("ETag", '"v1"')], request_time=T0 + 1, response_time=T0 + 1)
    assert f.freshness_lifetime == 60
    assert f.stale_if_error == 300


def test_flags_and_heuristic() -> None:
    assert stored(("Cache-Control", "s-maxage=5")).must_revalidate
    assert stored(("Cache-Control", "proxy-revalidate, max-age=5")).must_revalidate
    e = stored(("Cache-Control", "no-cache"), ("ETag", '"x"'))
    assert e.no_cache
    assert e.freshness_lifetime == 0
    h = stored(("Last-Modified", LM))
    assert h.heuristic
    assert h.freshness_lifetime == 1000


def sel(entry: StoredResponse, now: float, *headers: tuple[str, str]) -> Action:
    return policy.select(req("GET", "/a", *headers), [entry], now).action


def test_select_freshness() -> None:
    e = stored(("Cache-Control", "max-age=60"), ("ETag", '"v"'))
    assert sel(e, T0 + 59) is Action.FRESH
    assert sel(e, T0 + 60) is Action.REVALIDATE
    assert sel(e, T0 + 30, ("Cache-Control", "max-age=10")) is Action.REVALIDATE
    assert sel(e, T0 + 30, ("Cache-Control", "min-fresh=40")) is Action.REVALIDATE
    assert sel(e, T0 + 100, ("Cache-Control", "max-stale=50")) is Action.STALE
    assert sel(e, T0 + 100, ("Cache-Control", "max-stale=10")) is Action.REVALIDATE
    assert sel(e, T0 + 1, ("Cache-Control", "no-cache")) is Action.REVALIDATE
    assert sel(e, T0 + 100, ("Cache-Control", "only-if-cached")) is Action.GATEWAY_TIMEOUT
    no_validator = stored(("Cache-Control", "max-age=60"))
    s = policy.select(req(), [no_validator], T0 + 100)
    assert s.action is Action.MISS
    assert s.entry is no_validator


def test_select_swr_and_must_revalidate() -> None:
    e = stored(("Cache-Control", "max-age=60, stale-while-revalidate=30"))
    assert sel(e, T0 + 80) is Action.STALE_WHILE_REVALIDATE
    assert sel(e, T0 + 95) is Action.MISS
    m = stored(("Cache-Control", "max-age=60, must-revalidate, stale-while-revalidate=30"), ("ETag", '"v"'))
    assert sel(m, T0 + 80, ("Cache-Control", "max-stale")) is Action.REVALIDATE

    assert sel(replace(e, invalidated=True), T0 + 1) is Action.MISS


def test_select_vary() -> None:
    gz = stored(
        ("Cache-Control", "max-age=60"),
        ("Vary", "Accept-Encoding"),
        request=req("GET", "/a", ("Accept-Encoding", "gzip")),
    )
    plain = stored(("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding"))
    assert policy.select(req("GET", "/a", ("accept-encoding", "GZIP")), [plain, gz], T0).entry is gz
    assert policy.select(req(), [gz, plain], T0).entry is plain
    assert policy.select(req("GET", "/a", ("Accept-Encoding", "br")), [gz, plain], T0) == policy.Selection(
        Action.MISS
    )


def ans(
    entry: StoredResponse, *headers: tuple[str, str], method: str = "GET", now: float = T0 + 5
) -> policy.Answer:
    return policy.answer(req(method, "/a", *headers), entry, now)


def test_answer() -> None:
    e = stored(
        ("Cache-Control", "max-age=60"),
        ("ETag", 'W/"v"'),
        ("Last-Modified", LM),
        ("Content-Type", "text/plain"),
        ("Content-Length", "5"),
    )
    a = ans(e)
    assert (a.status, a.body, dict(a.headers)["age"]) == (200, b"hello", "5")
    assert ans(e, method="HEAD").body == b"hello"  # the writer drops it, keeping the length
    for cond in [("If-None-Match", '"x", "v"'), ("If-None-Match", "*"), ("If-Modified-Since", LM)]:
        n = ans(e, cond)
        assert n.status == 304
        assert n.body == b""
        assert {k for k, _ in n.headers} == {"date", "etag", "cache-control", "age"}
    # If-None-Match takes precedence over If-Modified-Since (RFC 9110 13.2.2).
    assert ans(e, ("If-None-Match", '"x"'), ("If-Modified-Since", DATE)).status == 200
    assert ans(e, ("If-Modified-Since", format_http_date(T0 - 20_000))).status == 200
    assert ans(e, ("If-Modified-Since", "garbage")).status == 200
    r = ans(e, ("Range", "bytes=1-2"))
    assert (r.status, r.body, dict(r.headers)["content-range"]) == (206, b"el", "bytes 1-2/5")
    assert ans(e, ("Range", "bytes=9-")).status == 416
    assert ans(e, ("Range", "bytes=1-2"), ("If-Range", 'W/"v"')).status == 200  # weak never matches
    assert ans(e, ("Range", "bytes=1-2"), ("If-Range", LM)).status == 206


def test_upstream_headers() -> None:
    e = stored(("Cache-Control", "max-age=60"), ("ETag", '"v"'), ("Last-Modified", LM))
    r = req("GET", "/a", ("If-None-Match", '"c"'), ("Range", "bytes=0-1"), ("X-A", "1"), ("If-Match", '"m"'))
    assert policy.upstream_headers(r, e) == (
        ("x-a", "1"),
        ("if-match", '"m"'),
        ("if-none-match", '"v"'),
        ("if-modified-since", LM),
    )
    assert policy.upstream_headers(r, None) == (("x-a", "1"), ("if-match", '"m"'))
    put = req("PUT", "/a", ("If-None-Match", "*"))
    assert policy.upstream_headers(put, None) == (("if-none-match", "*"),)


def test_freshen() -> None:

    e = replace(
        stored(("Cache-Control", "max-age=60"), ("ETag", '"v"'), ("Content-Length", "5"), ("X-Old", "1")),
        invalidated=True,
    )
    f = policy.freshen(
        e,
        [("Cache-Control", "max-age=600"), ("Content-Length", "0"), ("Cache-Tag", "t"), ("Age", "2")],
        request_time=T0 + 100,
        response_time=T0 + 100,
    )
    h = dict(f.headers)
    assert h["cache-control"] == "max-age=600"
    assert h["content-length"] == "5"
    assert h["x-old"] == "1"
    assert f.freshness_lifetime == 600
    assert f.tags == ("t",)
    assert not f.invalidated
    assert f.body == e.body
    assert policy.select(req(), [f], T0 + 150).action is Action.FRESH


def test_stale_on_error() -> None:
    e = stored(("Cache-Control", "max-age=60, stale-if-error=100"))
    assert policy.may_serve_stale_on_error(req(), e, T0 + 150, unreachable=False)
    assert not policy.may_serve_stale_on_error(req(), e, T0 + 200, unreachable=False)
    assert policy.may_serve_stale_on_error(
        req("GET", "/a", ("Cache-Control", "stale-if-error=500")), e, T0 + 200, unreachable=False
    )
    assert policy.may_serve_stale_on_error(req(), e, T0 + 80_000, unreachable=True)
    assert not policy.may_serve_stale_on_error(req(), e, T0 + 90_000, unreachable=True)
    m = stored(("Cache-Control", "max-age=60, must-revalidate, stale-if-error=100"))
    assert not policy.may_serve_stale_on_error(req(), m, T0 + 61, unreachable=True)
    nc = stored(("Cache-Control", "no-cache"), ("ETag", '"v"'))
    assert not policy.may_serve_stale_on_error(req(), nc, T0 + 10, unreachable=True)


def test_invalidation_keys() -> None:
    r = req("POST", "/a/b?x", ("Host", "ex.com"))
    hs = [("Location", "/c"), ("Content-Location", "http://ex.com/d?y")]
    assert policy.invalidation_keys(r, 201, hs) == ("/a/b?x", "/c", "/d?y")
    assert policy.invalidation_keys(r, 200, [("Location", "e")]) == ("/a/b?x", "/a/e")
    assert policy.invalidation_keys(r, 200, [("Location", "http://other.com/c")]) == ("/a/b?x",)
    assert policy.invalidation_keys(r, 500, hs) == ()
    assert policy.invalidation_keys(req("GET", "/a"), 200, hs) == ()


def test_client_headers() -> None:
    hs = [("EdgeCDN-Cache-Control", "max-age=1"), ("CDN-Cache-Control", "max-age=2"), ("X", "1")]
    assert policy.client_headers(hs) == (("CDN-Cache-Control", "max-age=2"), ("X", "1"))
