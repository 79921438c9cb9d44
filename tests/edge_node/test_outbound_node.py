"""Outbound HTTP in a real edge node process: a handler fetching through ``self`` and a
granted host, refusals and their counters, redirects, timeouts, and a slow origin while
the node's other routes (and other outbound handlers) keep answering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import wasmtime
from aiohttp import web

from simulator.supervisor import Supervisor
from tests.edge_node.conftest import edge_node_spec
from tests.wasm_host import wat
from tests.wasm_host.wat_outbound import WAGI_FETCH

APP = """
[app]
name = "outbound-test"
version = "1.0.0"

[[route]]
path = "/shop/..."
origin = "{origin}"

[[route]]
path = "/fetch"
module = "fetch"

[[route]]
path = "/fetch-quick"
module = "quick"

[[route]]
path = "/fast"
module = "fast"

[module.fetch]
source = "fetch.wasm"
timeout = "10s"
allowed_outbound_hosts = ["http://self", "{origin}"]

[module.quick]
source = "fetch.wasm"
timeout = "5s"
outbound_timeout = "200ms"
outbound_requests = 2
allowed_outbound_hosts = ["http://self"]

[module.fast]
source = "fast.wasm"
"""


@dataclass
class Origin:
    hits: dict[str, int] = field(default_factory=dict)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    slow_asked: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if request.path == "/shop/slow":
            self.slow_asked.set()
            await self.gate.wait()
        if request.path == "/shop/away":
            raise web.HTTPFound(location=str(request.query["to"]))
        return web.Response(
            body=f"weather {request.query_string}".encode(), headers={"cache-control": "max-age=60"}
        )


@dataclass
class World:
    url: str
    origin: Origin
    origin_url: str


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    origin = Origin()
    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", origin.handle)
    runner = web.AppRunner(application)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    origin_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    app = tmp_path / "app"
    app.mkdir()
    (app / "fetch.wasm").write_bytes(wasmtime.wat2wasm(WAGI_FETCH))
    (app / "fast.wasm").write_bytes(wasmtime.wat2wasm(wat.wagi_print(b"content-type: text/plain\n\nfast")))
    (app / "app.toml").write_text(APP.format(origin=origin_url))
    try:
        async with Supervisor(tmp_path / "run") as supervisor:
            node = await supervisor.start(edge_node_spec(app / "app.toml", tmp_path / "data"))
            yield World(url=node.report.addresses["http"], origin=origin, origin_url=origin_url)
    finally:
        origin.gate.set()
        await runner.cleanup()


async def _fetch(world: World, url: str, route: str = "/fetch") -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as client,
        client.post(world.url + route, data=url.encode()) as response,
    ):
        return response.status, await response.read()


async def _metrics(world: World) -> str:
    async with aiohttp.ClientSession() as client, client.get(world.url + "/metrics") as response:
        return await response.text()


async def test_self_and_granted_hosts_through_the_cache(world: World) -> None:
    assert await _fetch(world, "/shop/weather?country=KR") == (200, b"weather country=KR")
    assert await _fetch(world, "/shop/weather?country=KR") == (200, b"weather country=KR")
    assert await _fetch(world, world.origin_url + "/shop/weather?country=JP") == (200, b"weather country=JP")
    assert world.origin.hits == {"/shop/weather": 2}  # the repeat was a cache hit
    # A browser's request for the route hits the entry the handler's request stored.
    async with (
        aiohttp.ClientSession() as client,
        client.get(world.url + "/shop/weather?country=KR") as response,
    ):
        assert response.headers["x-cache"] == "HIT"
    metrics = await _metrics(world)
    assert 'edge_outbound_requests_total{module="fetch",result="HIT"} 1.0' in metrics
    assert 'edge_outbound_requests_total{module="fetch",result="MISS"} 2.0' in metrics


async def test_refused_hosts_and_redirects(world: World) -> None:
    status, body = await _fetch(world, "http://example.org/")
    assert status == 502
    assert body == b"error 06: http://example.org:80 is not in the module's allowed_outbound_hosts"
    status, body = await _fetch(world, "/shop/away?to=http://169.254.169.254/latest/meta-data/")
    assert status == 502
    assert body.startswith(b"error 07: http://169.254.169.254/latest/meta-data/ is on a link-local")
    # "self" grants origin routes only: no handler calls a handler.
    status, body = await _fetch(world, "/fast")
    assert (status, body[:9]) == (502, b"error 15:")
    metrics = await _metrics(world)
    assert 'edge_outbound_refusals_total{module="fetch",reason="not-allowed"} 1.0' in metrics
    assert 'edge_outbound_refusals_total{module="fetch",reason="blocked-address"} 1.0' in metrics


async def test_limits_per_module(world: World) -> None:
    # quick: two requests per invocation (a redirect is the second), 200 ms each.
    assert (await _fetch(world, "/shop/away?to=/shop/weather", "/fetch-quick"))[0] == 200
    status, body = await _fetch(world, "/shop/away?to=/shop/away?to=/shop/weather", "/fetch-quick")
    assert (status, body) == (502, b"error 08: at most 2 outbound requests per invocation")
    status, body = await _fetch(world, "/shop/slow", "/fetch-quick")
    assert (status, body) == (
        502,
        b"error 10: http://127.0.0.1:"
        + world.origin_url.split(":")[-1].encode()
        + b"/shop/slow did not answer within 200 ms",
    )


async def test_a_slow_origin_never_holds_the_other_routes(world: World) -> None:
    slow = asyncio.create_task(_fetch(world, "/shop/slow"))
    await world.origin.slow_asked.wait()
    async with aiohttp.ClientSession() as client:
        for _ in range(20):
            async with client.get(world.url + "/fast") as response:
                assert await response.read() == b"fast"
    # Another outbound handler's request goes through meanwhile too.
    assert await _fetch(world, "/shop/weather?country=FR") == (200, b"weather country=FR")
    assert not slow.done()
    world.origin.gate.set()
    assert await slow == (200, b"weather ")
