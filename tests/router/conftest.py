"""Real edge nodes (the geo-hello app), real routers, and clients from any country.

Every process gets the same geo cache directory, built once per session, so no child
spends its start-up building the world's geo database. Clients bind their sockets to an
address of their country's loopback block, so the router locates them by their real
source address.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from geo.database import ensure_world_db
from geo.world import World, load_world
from simulator.supervisor import ChildSpec, RunningChild
from tests.conftest import REPO_ROOT

WORLD_FILE = REPO_ROOT / "deploy" / "local" / "world.toml"
GEO_HELLO = REPO_ROOT / "handlers" / "geo-hello" / "app.toml"
KOREAN_HELLO = "안녕하세요!"


@pytest.fixture(scope="session")
def world() -> World:
    return load_world(WORLD_FILE)


@pytest.fixture(scope="session")
def geo_cache_dir(tmp_path_factory: pytest.TempPathFactory, world: World) -> Path:
    """One geo database for every node and router of the session."""
    directory = tmp_path_factory.mktemp("geo")
    ensure_world_db(world, directory)
    return directory


@pytest.fixture(scope="session")
def edge_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for every edge node: its compiled-module cache is made to be shared."""
    return tmp_path_factory.mktemp("edge-data")


def node_spec(
    region: str,
    data_dir: Path,
    geo_cache_dir: Path,
    *extra: str,
    node_id: str = "",
    port: int = 0,
    name: str = "",
) -> ChildSpec:
    """A geo-hello edge node in ``region`` that believes forwarding headers from 127.0.0.1."""
    node_id = node_id or f"{region}-a"
    return ChildSpec(
        name=name or f"node-{node_id}",
        argv=(
            sys.executable, "-m", "edge_node", "--app", str(GEO_HELLO), "--region", region,
            "--node-id", node_id, "--world", str(WORLD_FILE), "--data-dir", str(data_dir),
            "--geo-cache-dir", str(geo_cache_dir), "--trusted-proxy", "127.0.0.1/32",
            "--port", str(port), *extra,
        ),
    )  # fmt: skip


def router_spec(geo_cache_dir: Path, *args: str, name: str = "router") -> ChildSpec:
    return ChildSpec(
        name=name,
        argv=(
            sys.executable, "-m", "router", "--world", str(WORLD_FILE), "--port", "0",
            "--geo-cache-dir", str(geo_cache_dir), *args,
        ),
    )  # fmt: skip


def edge_flags(regions: Sequence[str], nodes: Sequence[RunningChild]) -> list[str]:
    """``--edge REGION=URL`` for each node, in order."""
    return [
        arg
        for region, node in zip(regions, nodes, strict=True)
        for arg in ("--edge", f"{region}={url_of(node)}")
    ]


def url_of(child: RunningChild) -> str:
    return child.report.addresses["http"]


def port_of(child: RunningChild) -> int:
    return int(url_of(child).rsplit(":", 1)[1])


def free_port() -> int:
    """A TCP port nothing listens on (just released by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def client_from(world: World, country: str, index: int = 1) -> aiohttp.ClientSession:
    """An HTTP client whose connections leave from ``country``'s loopback block."""
    address = world.country(country).client_address(index)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=True))


def route_of(response: aiohttp.ClientResponse) -> dict[str, str]:
    """``x-edge-route: region=..; node=..; reason=..; rtt_ms=..`` as a dict."""
    header = response.headers["x-edge-route"]
    return dict(part.strip().split("=", 1) for part in header.split(";"))


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def router_status(router: RunningChild) -> dict[str, Any]:
    status: dict[str, Any] = await get_json(f"{url_of(router)}/_router/status")
    return status


def status_node(status: dict[str, Any], node_id: str) -> dict[str, Any]:
    for region in status["regions"]:
        for node in region["nodes"]:
            if node["node_id"] == node_id:
                result: dict[str, Any] = node
                return result
    raise AssertionError(f"{node_id} is not in the router's status: {json.dumps(status)}")


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within_s: float, interval_s: float = 0.05, what: str
) -> float:
    """Poll ``check`` until it is true; return the seconds it took (fail after ``within_s``)."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within_s:
            raise AssertionError(f"not within {within_s:g}s: {what}")
        await asyncio.sleep(interval_s)


@asynccontextmanager
async def stub_edge(name: str) -> AsyncIterator[str]:
    """A stand-in edge node on 127.0.0.1; yields its URL.

    It answers every request with JSON: its ``name``, and the length and sha256 of the body it got.
    """

    async def answer(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        return web.json_response(
            {"name": name, "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serving(app) as url:
        yield url


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on a free port of 127.0.0.1; yields its URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
