"""Shared-cache policy and the bounded store."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_node.http_cache import (
    CacheKey,
    ResponseCache,
    cache_control,
    freshness_lifetime,
    request_allows_cache,
)

KEY = CacheKey.for_request("GET", "/img/a.png", "")


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({"cache-control": "max-age=60"}, 60.0),
        ({"cache-control": "public, s-maxage=30, max-age=60"}, 30.0),
        ({"cache-control": "max-age=60", "age": "20"}, 40.0),
        ({"cache-control": "max-age=60", "age": "90"}, None),
        ({"cache-control": "private, max-age=60"}, None),
        ({"cache-control": "no-store"}, None),
        ({"cache-control": "max-age=60", "set-cookie": "a=b"}, None),
        ({"cache-control": "max-age=60", "vary": "*"}, None),
        ({"cache-control": "max-age=banana"}, None),
        ({}, None),
        ({"expires": "Thu, 01 Jan 1970 00:01:40 GMT"}, 90.0),
        ({"expires": "0"}, None),
    ],
)
def test_freshness(headers: dict[str, str], lifetime: float | None) -> None:
    assert freshness_lifetime(200, headers, now=10.0) == lifetime


def test_uncacheable_status() -> None:
    assert freshness_lifetime(500, {"cache-control": "max-age=60"}, now=0) is None


@pytest.mark.parametrize(
    ("method", "headers", "allowed"),
    [
        ("GET", {}, True),
        ("HEAD", {}, True),
        ("POST", {}, False),
        ("GET", {"cache-control": "no-cache"}, False),
        ("GET", {"authorization": "Bearer x"}, False),
    ],
)
def test_request_rules(method: str, headers: dict[str, str], allowed: bool) -> None:
    assert request_allows_cache(method, headers) is allowed


def test_hit_then_expiry() -> None:
    cache = ResponseCache(max_bytes=10_000, max_entry_bytes=10_000)
    stored = cache.put(KEY, status=200, headers=[("Cache-Control", "max-age=5")], body=b"x", now=100.0)
    assert stored is not None
    hit = cache.get(CacheKey.for_request("HEAD", "/img/a.png", ""), now=103.0)
    assert hit is not None
    assert hit.age(103.0) == 3
    assert cache.get(KEY, now=105.0) is None
    assert len(cache) == 0
    assert cache.size_bytes == 0


def test_hop_by_hop_headers_are_not_stored() -> None:
    cache = ResponseCache(max_bytes=10_000, max_entry_bytes=10_000)
    cache.put(
        KEY, status=200, headers=[("cache-control", "max-age=5"), ("Connection", "close")], body=b"", now=0
    )
    entry = cache.get(KEY, now=1)
    assert entry is not None
    assert ("connection", "close") not in entry.headers


def test_lru_evicts_oldest_by_bytes() -> None:
    cache = ResponseCache(max_bytes=250, max_entry_bytes=250)
    headers = [("cache-control", "max-age=60")]
    for name in ("a", "b", "c"):
        cache.put(
            CacheKey.for_request("GET", f"/{name}", ""), status=200, headers=headers, body=b"x" * 80, now=0
        )
    assert cache.get(CacheKey.for_request("GET", "/a", ""), now=1) is None
    assert cache.get(CacheKey.for_request("GET", "/c", ""), now=1) is not None
    assert cache.size_bytes <= 250


def test_oversized_entry_is_skipped() -> None:
    cache = ResponseCache(max_bytes=10_000, max_entry_bytes=10)
    assert (
        cache.put(KEY, status=200, headers=[("cache-control", "max-age=5")], body=b"x" * 100, now=0) is None
    )


def test_purge_by_prefix() -> None:
    cache = ResponseCache(max_bytes=10_000, max_entry_bytes=10_000)
    headers = [("cache-control", "max-age=60")]
    for path in ("/img/a", "/img/b", "/css/c"):
        cache.put(CacheKey.for_request("GET", path, ""), status=200, headers=headers, body=b"", now=0)
    assert cache.purge(path_prefixes=["/img/"]) == 2
    assert len(cache) == 1
    assert cache.purge(everything=True) == 1


@given(st.text(max_size=60))
def test_cache_control_parser_never_raises(value: str) -> None:
    directives = cache_control(value)
    assert all(name == name.lower() and name for name in directives)


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 200)), max_size=40))
def test_store_never_exceeds_its_budget(ops: list[tuple[str, int]]) -> None:
    cache = ResponseCache(max_bytes=500, max_entry_bytes=300)
    for name, size in ops:
        key = CacheKey.for_request("GET", "/" + name, "")
        cache.put(key, status=200, headers=[("cache-control", "max-age=9")], body=b"x" * size, now=0)
        assert cache.size_bytes <= 500
        assert cache.size_bytes == sum(e.size for e in cache._entries.values())
