"""The proxy's fast path (router.fastpath) as clients meet it: a real router process in front
of two stand-in nodes of the test's own (af-south-1, where South African clients go), so
each outcome can be produced on demand: small answers, large chunked ones, a node that
drops a kept-alive request, a node that never answers. Each test first sends one request
from the same client (``client_of``), so a kept-alive connection to its node is free and
the next request takes the fast path; the router's /_router/status counts those.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from geo.world import World
from simulator.supervisor import RunningChild, Supervisor
from tests.edge_node.test_http_adapter_answers import log_line
from tests.router.conftest import (
    get_json,
    route_of,
    router_spec,
    router_status,
    serving,
    status_node,
    url_of,
)

REGION = "af-south-1"
BIG = bytes(range(256)) * (3 * 4096)  # 3 MiB, past the size answered in one write
NO_ACTIVE_CHECKS = ("--health-interval", "30", "--wan", "off")


@asynccontextmanager
async def stand_in(name: str) -> AsyncIterator[str]:
    """A node of the test's own; the node named ``flaky`` drops every /drop request."""
    closing = asyncio.Event()  # /stall holds its answer until the stand-in closes, no longer

    async def small(_: web.Request) -> web.StreamResponse:
        return web.Response(text=f"small from {name}", headers={"x-node": name})

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no length: chunked
        await response.prepare(request)
        for start in range(0, len(BIG), 64 * 1024):
            await response.write(BIG[start : start + 64 * 1024])
        await response.write_eof()
        return response

    async def drop(request: web.Request) -> web.StreamResponse:
        if name == "flaky" and request.transport is not None:
            request.transport.abort()
        return web.Response(text=f"kept from {name}")

    async def stall(_: web.Request) -> web.StreamResponse:
        await closing.wait()
        return web.Response(text="too late")

    async def garbage(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:  # not HTTP: a header line without a colon
            request.transport.write(b"HTTP/1.1 200 OK\r\nthis is no header\r\n\r\n")
            request.transport.close()
        return web.Response(text="never read")

    app = web.Application()
    for path, handler in (
        ("/small", small),
        ("/big", big),
        ("/drop", drop),
        ("/stall", stall),
        ("/garbage", garbage),
    ):
        app.router.add_get(path, handler)
    app.router.add_get("/healthz", small)
    async with serving(app) as url:
        try:
            yield url
        finally:
            closing.set()


async def fast_requests(router: RunningChild) -> int:
    status = await router_status(router)
    assert status["fast_path"]["enabled"] is True
    count: int = status["fast_path"]["requests_total"]
    return count


async def fetch(router: RunningChild, address: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as client,
        client.get(url_of(router) + path) as answer,
    ):
        request_id = {
            "x-request-id": answer.headers.get("x-request-id", "")
        }  # a plain dict is case-sensitive
        return answer.status, await answer.read(), {**answer.headers, **request_id, **route_of(answer)}


@pytest.fixture
async def two_nodes() -> AsyncIterator[tuple[str, str]]:
    async with stand_in("flaky") as flaky, stand_in("steady") as steady:
        yield flaky, steady


async def start_router(
    supervisor: Supervisor, geo_cache_dir: Path, nodes: tuple[str, str], *extra: str
) -> RunningChild:
    flaky, steady = nodes
    return await supervisor.start(
        router_spec(
            geo_cache_dir, *NO_ACTIVE_CHECKS, *extra,
            "--edge", f"{REGION}/flaky={flaky}", "--edge", f"{REGION}/steady={steady}",
        )
    )  # fmt: skip


async def client_of(router: RunningChild, world: World, node: str) -> str:
    """A South African client address whose requests go to ``node`` first, after one
    request from it that leaves a kept-alive connection to ``node`` free for the next."""
    for index in range(1, 64):
        address = world.country("ZA").client_address(index)
        answer = await get_json(f"{url_of(router)}/_router/resolve?ip={address}")
        if answer["route"]["node_id"] == node:
            await fetch(router, address, "/small")
            return address
    raise AssertionError(f"no client address hashes to {node} first")


async def test_a_small_answer_comes_whole_from_the_fast_path(
    supervisor: Supervisor, world: World, geo_cache_dir: Path, two_nodes: tuple[str, str]
) -> None:
    router = await start_router(supervisor, geo_cache_dir, two_nodes)
    address = await client_of(router, world, "steady")
    before = await fast_requests(router)
    status, body, headers = await fetch(router, address, "/small")
    assert await fast_requests(router) == before + 1
    assert (status, body) == (200, b"small from steady")
    assert headers["x-node"] == "steady"
    assert (headers["region"], headers["node"]) == (REGION, "steady")
    assert headers["Content-Length"] == str(len(body))


async def test_a_large_chunked_answer_streams_whole_through_the_fast_path(
    supervisor: Supervisor, world: World, geo_cache_dir: Path, two_nodes: tuple[str, str]
) -> None:
    router = await start_router(supervisor, geo_cache_dir, two_nodes)
    address = await client_of(router, world, "steady")
    before = await fast_requests(router)
    for _ in range(2):  # and the connection goes back to the pool for the next one
        status, body, _ = await fetch(router, address, "/big")
        assert status == 200
        assert hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest()
    assert await fast_requests(router) == before + 2


async def test_a_node_that_drops_a_kept_alive_request_is_ejected_and_the_next_one_answers(
    supervisor: Supervisor, world: World, geo_cache_dir: Path, two_nodes: tuple[str, str]
) -> None:
    router = await start_router(supervisor, geo_cache_dir, two_nodes)
    address = await client_of(router, world, "flaky")
    before = await fast_requests(router)
    status, body, headers = await fetch(router, address, "/drop")
    assert await fast_requests(router) == before + 1
    assert (status, body, headers["node"]) == (200, b"kept from steady", "steady")
    flaky = status_node(await router_status(router), "flaky")
    assert flaky["ejections_total"] == 1
    assert flaky["in_flight"] == 0


async def test_a_node_that_never_answers_is_a_504_after_the_upstream_timeout(
    supervisor: Supervisor, world: World, geo_cache_dir: Path, two_nodes: tuple[str, str]
) -> None:
    router = await start_router(supervisor, geo_cache_dir, two_nodes, "--upstream-timeout", "0.5")
    address = await client_of(router, world, "steady")
    started = time.monotonic()
    status, body, headers = await fetch(router, address, "/stall")
    waited = time.monotonic() - started
    assert status == 504
    request_id = headers["x-request-id"]
    assert json.loads(body) == {
        "error": "upstream_timeout",
        "message": "the edge node did not answer in time",
        "request_id": request_id,
    }  # the node, its address and the timeout are the log's (issue 24, finding 6)
    assert headers["node"] == "steady"
    assert 0.4 < waited < 5
    assert status_node(await router_status(router), "steady")["in_flight"] == 0
    line = await log_line(router, request_id)
    assert "GET /stall answered 504 upstream_timeout via node steady" in line
    assert "no answer within 0.5s" in line


async def test_a_bad_answer_on_the_fast_path_is_a_502_without_the_nodes_insides(
    supervisor: Supervisor, world: World, geo_cache_dir: Path, two_nodes: tuple[str, str]
) -> None:
    router = await start_router(supervisor, geo_cache_dir, two_nodes)
    address = await client_of(router, world, "steady")
    before = await fast_requests(router)
    status, body, headers = await fetch(router, address, "/garbage")
    assert await fast_requests(router) == before + 1
    assert status == 502
    request_id = headers["x-request-id"]
    assert json.loads(body) == {
        "error": "upstream_unavailable",
        "message": "the edge node failed to answer",
        "request_id": request_id,
    }
    assert headers["node"] == "steady"  # x-edge-route still says who was asked
    _, steady = two_nodes
    line = await log_line(router, request_id)
    assert f"upstream_unavailable via node steady at {steady}" in line
    assert "malformed answer" in line


async def test_connection_close_from_the_client_is_honoured_on_the_fast_path(
    supervisor: Supervisor, world: World, geo_cache_dir: Path, two_nodes: tuple[str, str]
) -> None:
    router = await start_router(supervisor, geo_cache_dir, two_nodes)
    address = await client_of(router, world, "steady")
    before = await fast_requests(router)
    host, port = url_of(router).removeprefix("http://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    with socket.socket() as sock:
        sock.bind((address, 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, int(port)))
        await loop.sock_sendall(sock, b"GET /small HTTP/1.1\r\nhost: edge\r\nconnection: close\r\n\r\n")
        received = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout=5):
            received += chunk  # ends when the router closes the connection
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nconnection: close" in head.lower()
    assert body == b"small from steady"
    assert await fast_requests(router) == before + 1
