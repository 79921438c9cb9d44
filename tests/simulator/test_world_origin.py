"""The local world's origin (simulator.world_origin): what it answers, over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.world_origin import NAMES, language, run


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run("127.0.0.1", 0, ready=lambda a: ready.set_result(a["http"]), stop=stop))
    try:
        yield await asyncio.wait_for(ready, 10)
    finally:
        stop.set()
        await task


@pytest.mark.parametrize(
    ("header", "expected"),
    [("ko-KR,ko;q=0.9", "ko"), ("fr, ja;q=0.5", "ja"), ("", "en"), ("de", "en"), ("EN-gb", "en")],
)
def test_language_is_the_first_the_shop_has(header: str, expected: str) -> None:
    assert language(header) == expected


@given(st.text(max_size=60))
def test_any_accept_language_gets_a_language_the_shop_has(header: str) -> None:
    assert language(header) in NAMES


async def test_a_product_carries_what_the_cache_needs(origin: str) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{origin}/shop/products/7", headers={"accept-language": "ja"}) as response:
            body = await response.json()
            headers = response.headers
        assert (response.status, body["name"], body["version"]) == (200, "傘", 1)
        assert headers["vary"] == "accept-language"
        assert headers["cache-tag"] == "product-7, products"
        assert "stale-if-error" in headers["cache-control"]
        etag = headers["etag"]
        async with client.get(f"{origin}/shop/products/7", headers={"if-none-match": etag}) as response:
            assert response.status == 304
        async with client.post(f"{origin}/shop/products/7") as response:
            assert (await response.json())["version"] == 2
        async with client.get(f"{origin}/shop/products/7", headers={"if-none-match": etag}) as response:
            assert response.status == 200  # a new version: the old ETag no longer matches
            assert int(response.headers["x-origin-requests"]) == 4


async def test_it_answers_the_worlds_health_probe(origin: str) -> None:
    async with aiohttp.ClientSession() as client, client.get(f"{origin}/healthz") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})


async def test_unknown_products_are_404_with_a_reason(origin: str) -> None:
    async with aiohttp.ClientSession() as client:
        for path in ("/shop/products/0", "/shop/products/101", "/shop/products/x"):
            async with client.get(f"{origin}{path}") as response:
                assert response.status == 404
                assert "products are 1..100" in await response.text()
