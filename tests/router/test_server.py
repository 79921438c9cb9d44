"""The router as clients meet it: real edge nodes, real router processes, clients from real countries.

One set of processes serves the whole module (nothing here changes their health):
geo-hello nodes in ap-northeast-2, sa-east-1 and eu-central-1 behind two routers (WAN
emulation off and on). The first router also knows a small origin of the test's own as
node ``origin`` in af-south-1 (nearest to none of the test's clients; reached by pinning),
for bodies and headers geo-hello cannot show.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from geo.latency import LatencyModel
from geo.world import World
from router.admin_http import ADMIN_ELSEWHERE
from simulator.supervisor import RunningChild, Supervisor
from tests.router.conftest import (
    KOREAN_HELLO,
    WORLD_FILE,
    client_from,
    edge_flags,
    get_json,
    node_spec,
    route_of,
    router_spec,
    status_node,
    url_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

REGIONS = ("ap-northeast-2", "sa-east-1", "eu-central-1")
ORIGIN_REGION = "af-south-1"
ORIGIN_NODE = "origin"
TO_ORIGIN = {"x-edge-pin": ORIGIN_NODE}
UPLOAD_BYTES = 8 * 1024 * 1024
DOWNLOAD_BYTES = 20 * 1024 * 1024
WRITE_CHUNK = 256 * 1024
# WAN tolerance: jitter is +-1 ms per direction; a slow shared machine adds, never removes.
WAN_BELOW_MS = 3.0
WAN_ABOVE_MS = 150.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """The test's own upstream: echoes bodies and headers, serves a large body, drips."""

    url: str
    big: bytes
    releases: dict[str, asyncio.Event]


@dataclass(frozen=True, slots=True, kw_only=True)
class Routers:
    plain: RunningChild  # geo-hello nodes and af-south-1/origin, --wan off, trusts 127.0.0.1
    wan: RunningChild  # the geo-hello nodes, --wan model
    split: RunningChild  # the geo-hello nodes, --wan off, admin endpoints on --admin-port


def origin_app(big: bytes, releases: dict[str, asyncio.Event]) -> web.Application:
    async def healthz(_: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def echo(request: web.Request) -> web.StreamResponse:
        digest = hashlib.sha256()
        length = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
        return web.json_response({"length": length, "sha256": digest.hexdigest()})

    async def headers(request: web.Request) -> web.StreamResponse:
        return web.json_response({name.lower(): value for name, value in request.headers.items()})

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = len(big)
        await response.prepare(request)
        view = memoryview(big)
        for start in range(0, len(big), WRITE_CHUNK):
            await response.write(view[start : start + WRITE_CHUNK])
        await response.write_eof()
        return response

    async def drip(request: web.Request) -> web.StreamResponse:
        """One line now, the rest only once the test has seen that line through the router."""
        release = releases[request.match_info["key"]]
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first\n")
        await asyncio.wait_for(release.wait(), 10)
        await response.write(b"rest\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/echo", echo)
    app.router.add_get("/headers", headers)
    app.router.add_get("/download", download)
    app.router.add_get("/drip/{key}", drip)
    return app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def origin() -> AsyncIterator[Origin]:
    big = random.Random(20260101).randbytes(DOWNLOAD_BYTES)
    releases: dict[str, asyncio.Event] = {}
    runner = web.AppRunner(origin_app(big, releases), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Origin(url=f"http://{host}:{port}", big=big, releases=releases)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def routers(
    tmp_path_factory: pytest.TempPathFactory, geo_cache_dir: Path, edge_data_dir: Path, origin: Origin
) -> AsyncIterator[Routers]:
    base = tmp_path_factory.mktemp("router-server")
    async with Supervisor(base / "run") as supervisor:
        nodes = await supervisor.start_group(
            [node_spec(region, edge_data_dir, geo_cache_dir) for region in REGIONS]
        )
        edges = edge_flags(REGIONS, nodes)
        trust = ("--trusted-proxy", "127.0.0.1/32")
        origin_edge = ("--edge", f"{ORIGIN_REGION}/{ORIGIN_NODE}={origin.url}")
        plain, wan, split = await supervisor.start_group(
            [
                router_spec(geo_cache_dir, *edges, *origin_edge, "--wan", "off", *trust, name="router-plain"),
                router_spec(geo_cache_dir, *edges, "--wan", "model", name="router-wan"),
                router_spec(geo_cache_dir, *edges, "--wan", "off", "--admin-port", "0", name="router-split"),
            ]
        )
        yield Routers(plain=plain, wan=wan, split=split)


def modeled_rtt(world: World, country: str, region: str) -> float:
    return LatencyModel(world).rtt_ms(world.country(country), world.region(region))


# Routing through real processes.


@pytest.mark.parametrize(
    ("country", "region", "greeting", "language"),
    [
        ("KR", "ap-northeast-2", KOREAN_HELLO, "ko"),
        ("BR", "sa-east-1", "Olá!", "pt"),
        ("DE", "eu-central-1", "Hallo!", "de"),
    ],
)
async def test_each_client_is_served_by_its_nearest_region(
    routers: Routers, world: World, country: str, region: str, greeting: str, language: str
) -> None:
    async with (
        client_from(world, country) as client,
        client.get(f"{url_of(routers.plain)}/hello") as response,
    ):
        assert response.status == 200
        body = await response.text()
        route = route_of(response)
        assert response.headers["x-edge-node"] == f"{region}-a"
        assert response.headers["content-language"] == language
        # geo-hello names its region too; the node's own statement replaces it, never repeats it.
        assert response.headers.getall("x-edge-region") == [region]
    assert body.startswith(greeting)
    assert f"Your country: {country}. Served by edge region {region}." in body
    assert route["region"] == region
    assert route["node"] == f"{region}-a"
    assert route["reason"] == "nearest"
    assert float(route["rtt_ms"]) == pytest.approx(modeled_rtt(world, country, region), abs=1.0)


@pytest.mark.parametrize("pin", ["sa-east-1", "sa-east-1-a"])
async def test_a_pinned_request_goes_where_it_is_pinned(routers: Routers, world: World, pin: str) -> None:
    async with (
        client_from(world, "KR") as client,
        client.get(f"{url_of(routers.plain)}/hello", headers={"x-edge-pin": pin}) as response,
    ):
        assert response.status == 200
        body = await response.text()
        route = route_of(response)
    assert route["region"] == "sa-east-1"
    assert route["reason"] == "pinned"
    assert body.startswith(KOREAN_HELLO), "the node still sees the client's real country"
    assert "Your country: KR. Served by edge region sa-east-1." in body


async def test_forwarded_and_geo_headers_of_an_untrusted_client_are_ignored(
    routers: Routers, world: World
) -> None:
    spoofed = {
        "x-forwarded-for": world.country("BR").client_address(),
        "forwarded": f"for={world.country('BR').client_address()}",
        "cf-ipcountry": "BR",
        "x-geo-country": "BR",
        "x-edge-region": "sa-east-1",
    }
    async with (
        client_from(world, "KR") as client,
        client.get(f"{url_of(routers.plain)}/hello", headers=spoofed) as response,
    ):
        assert response.status == 200
        body = await response.text()
        route = route_of(response)
    assert route["region"] == "ap-northeast-2"
    assert route["reason"] == "nearest"
    assert body.startswith(KOREAN_HELLO)
    assert "Your country: KR. Served by edge region ap-northeast-2." in body


async def test_a_trusted_proxys_forwarding_chain_is_honoured(routers: Routers, world: World) -> None:
    # The router trusts 127.0.0.1/32: a proxy there tells it where the client really is.
    brazil = world.country("BR").client_address()
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{url_of(routers.plain)}/hello", headers={"x-forwarded-for": brazil}) as response,
    ):
        assert response.status == 200
        body = await response.text()
        route = route_of(response)
    assert route["region"] == "sa-east-1"
    assert route["reason"] == "nearest"
    assert body.startswith("Olá!")
    assert "Your country: BR. Served by edge region sa-east-1." in body


async def test_what_the_edge_receives_from_an_untrusted_client(
    routers: Routers, origin: Origin, world: World
) -> None:
    korea = world.country("KR").client_address()
    spoofed = {
        "x-forwarded-for": "203.0.113.9",
        "x-real-ip": "203.0.113.9",
        "cf-ipcountry": "BR",
        "x-geo-country": "BR",
        "x-edge-node": "elsewhere",
        "x-edge-pin": ORIGIN_NODE,
        "x-custom": "kept",
    }
    async with (
        client_from(world, "KR") as client,
        client.get(f"{url_of(routers.plain)}/headers", headers=spoofed) as response,
    ):
        assert response.status == 200
        assert route_of(response)["node"] == ORIGIN_NODE
        seen: dict[str, str] = await response.json()
    assert seen["x-forwarded-for"] == korea
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-custom"] == "kept"
    for dropped in ("x-real-ip", "cf-ipcountry", "x-geo-country", "x-edge-node", "x-edge-pin"):
        assert dropped not in seen, f"{dropped} reached the edge"


async def test_what_the_edge_receives_from_a_trusted_proxy(routers: Routers, world: World) -> None:
    brazil = world.country("BR").client_address()
    async with (
        aiohttp.ClientSession() as client,
        client.get(
            f"{url_of(routers.plain)}/headers",
            headers={"x-forwarded-for": brazil, "cf-ipcountry": "BR", **TO_ORIGIN},
        ) as response,
    ):
        assert response.status == 200
        assert route_of(response)["node"] == ORIGIN_NODE
        seen: dict[str, str] = await response.json()
    assert seen["x-forwarded-for"] == f"{brazil}, 127.0.0.1", "the chain is extended with the proxy"
    assert seen["cf-ipcountry"] == "BR", "a trusted proxy's geo headers pass"


# WAN emulation.


async def timed_get(
    client: aiohttp.ClientSession, url: str, headers: Mapping[str, str] | None = None
) -> tuple[float, dict[str, str]]:
    """Milliseconds for one request (status 200 asserted) and its route."""
    started = time.perf_counter()
    async with client.get(url, headers=headers) as response:
        await response.read()
        elapsed_ms = (time.perf_counter() - started) * 1000
        assert response.status == 200
        return elapsed_ms, route_of(response)


async def test_wan_emulation_adds_the_modeled_round_trip(routers: Routers, world: World) -> None:
    pin = {"x-edge-pin": "eu-central-1"}  # a Korean client, served from Frankfurt
    model: list[float] = []
    off: list[float] = []
    rtts: set[str] = set()
    async with client_from(world, "KR") as client:
        for router in (routers.plain, routers.wan):  # warm the upstream pools
            await timed_get(client, f"{url_of(router)}/hello-fast", pin)
        # Interleaved; more samples without WAN, whose minimum is the router's bare overhead.
        for _ in range(4):
            for _ in range(3):
                elapsed, _route = await timed_get(client, f"{url_of(routers.plain)}/hello-fast", pin)
                off.append(elapsed)
            elapsed, route = await timed_get(client, f"{url_of(routers.wan)}/hello-fast", pin)
            model.append(elapsed)
            rtts.add(route["rtt_ms"])
    (rtt_text,) = rtts
    rtt = float(rtt_text)
    assert rtt == pytest.approx(modeled_rtt(world, "KR", "eu-central-1"), abs=1.0)
    assert rtt > 100, "Seoul to Frankfurt is far"
    added = min(model) - min(off)
    assert rtt - WAN_BELOW_MS <= added <= rtt + WAN_ABOVE_MS, (rtt, model, off)
    for elapsed in model:
        assert elapsed >= rtt - WAN_BELOW_MS, "every request waits the modeled RTT"
    assert statistics.median(model) - statistics.median(off) <= rtt + WAN_ABOVE_MS


async def test_wan_delays_do_not_block_other_requests(routers: Routers, world: World) -> None:
    far_url = f"{url_of(routers.wan)}/hello-fast"
    far_pin = {"x-edge-pin": "ap-northeast-2"}  # Brazilians sent to Seoul: ~290 ms
    async with client_from(world, "BR") as far_client, client_from(world, "KR") as near_client:
        _, far_route = await timed_get(far_client, far_url, far_pin)
        _, near_route = await timed_get(near_client, far_url)
        far_rtt = float(far_route["rtt_ms"])
        near_rtt = float(near_route["rtt_ms"])
        assert far_rtt > 250
        assert near_rtt < 20

        started = time.perf_counter()
        far = [asyncio.create_task(timed_get(far_client, far_url, far_pin)) for _ in range(10)]
        await asyncio.sleep(0.03)  # the far requests now sit in the router's WAN delay
        near_ms, route = await timed_get(near_client, far_url)
        near_done_ms = (time.perf_counter() - started) * 1000
        far_results = await asyncio.gather(*far)
        all_done_ms = (time.perf_counter() - started) * 1000
    assert route["region"] == "ap-northeast-2"
    # Blocked behind the far requests it would wait >= far_rtt; served alongside, about near_rtt.
    assert near_ms < far_rtt / 2, f"a near client waited {near_ms:.0f} ms behind far ones"
    assert near_done_ms < far_rtt - 50, "the near answer came while the far ones were still delayed"
    assert all(elapsed >= far_rtt - WAN_BELOW_MS for elapsed, _ in far_results)
    assert all_done_ms < 2 * far_rtt + WAN_ABOVE_MS, "the far requests were delayed concurrently"


# Streaming and byte integrity (the test's own origin behind the router).


async def upload_chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), WRITE_CHUNK):
        yield data[start : start + WRITE_CHUNK]
        await asyncio.sleep(0)


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_large_upload_streams_through_intact(routers: Routers, world: World, framing: str) -> None:
    data = os.urandom(UPLOAD_BYTES)
    body: Any = upload_chunks(data) if framing == "chunked" else io.BytesIO(data)
    async with (
        client_from(world, "DE") as client,
        client.post(f"{url_of(routers.plain)}/echo", data=body, headers=TO_ORIGIN) as response,
    ):
        assert response.status == 200
        echoed = await response.json()
        assert route_of(response)["node"] == ORIGIN_NODE
    assert echoed == {"length": UPLOAD_BYTES, "sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
async def test_a_nodes_early_answer_to_a_too_large_body_is_passed_on(
    routers: Routers, world: World, framing: str
) -> None:
    """The node answers 413 before taking the whole body, then closes: the client gets that
    413. (The router used to write the rest into the closed connection and answer 500.)"""
    data = bytes(11 * 1024 * 1024)  # over the node's 10 MiB limit
    body: Any = upload_chunks(data) if framing == "chunked" else io.BytesIO(data)
    async with (
        client_from(world, "KR") as client,
        client.post(f"{url_of(routers.plain)}/sensors/stats", data=body) as response,
    ):
        assert response.status == 413
        assert (await response.json())["error"] == "body_too_large"
    async with client_from(world, "KR") as client, client.get(f"{url_of(routers.plain)}/hello") as again:
        assert again.status == 200  # and the router goes on serving


async def test_a_large_download_streams_through_intact(
    routers: Routers, origin: Origin, world: World
) -> None:
    digest = hashlib.sha256()
    length = 0
    chunks = 0
    async with (
        client_from(world, "DE") as client,
        client.get(f"{url_of(routers.plain)}/download", headers=TO_ORIGIN) as response,
    ):
        assert response.status == 200
        assert route_of(response)["node"] == ORIGIN_NODE
        async for chunk in response.content.iter_any():
            digest.update(chunk)
            length += len(chunk)
            chunks += 1
    assert length == DOWNLOAD_BYTES
    assert digest.hexdigest() == hashlib.sha256(origin.big).hexdigest()
    assert chunks > 1


async def test_an_answer_is_passed_on_as_it_comes(routers: Routers, origin: Origin, world: World) -> None:
    release = origin.releases["drip"] = asyncio.Event()
    async with (
        client_from(world, "DE") as client,
        client.get(f"{url_of(routers.plain)}/drip/drip", headers=TO_ORIGIN) as response,
    ):
        assert response.status == 200
        # The origin sends the rest only after this line arrived: a buffering router hangs here.
        first = await asyncio.wait_for(response.content.readline(), 5)
        release.set()
        rest = await asyncio.wait_for(response.content.read(), 5)
    assert first == b"first\n"
    assert rest == b"rest\n"


# Admin endpoints.


async def test_resolve_answers_like_a_geodns(routers: Routers, world: World) -> None:
    base = f"{url_of(routers.plain)}/_router/resolve"
    korea = world.country("KR").client_address()
    kr = await get_json(f"{base}?ip={korea}")
    assert kr["ip"] == korea
    assert kr["location"]["country"] == "KR"
    assert kr["route"]["region"] == "ap-northeast-2"
    assert kr["route"]["node_id"] == "ap-northeast-2-a"
    assert kr["route"]["reason"] == "nearest"
    assert kr["route"]["url"].startswith("http://127.0.0.1:")
    assert kr["route"]["rtt_ms"] == pytest.approx(modeled_rtt(world, "KR", "ap-northeast-2"), abs=1.0)
    assert kr["candidates"][0]["region"] == "ap-northeast-2"
    assert {c["region"] for c in kr["candidates"]} == {*REGIONS, ORIGIN_REGION}
    assert [c["reason"] for c in kr["candidates"]] == ["nearest", "failover", "failover", "failover"]
    rtts = [c["rtt_ms"] for c in kr["candidates"]]
    assert rtts == sorted(rtts)

    br = await get_json(f"{base}?ip={world.country('BR').client_address()}")
    assert br["location"]["country"] == "BR"
    assert br["route"]["region"] == "sa-east-1"

    pinned = await get_json(f"{base}?ip={korea}&pin=eu-central-1")
    assert pinned["route"]["region"] == "eu-central-1"
    assert pinned["route"]["reason"] == "pinned"


@pytest.mark.parametrize("query", ["?ip=not-an-address", "?ip=300.1.2.3", ""])
async def test_resolve_rejects_a_bad_address(routers: Routers, query: str) -> None:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{url_of(routers.plain)}/_router/resolve{query}") as response,
    ):
        assert response.status == 400
        error = await response.json()
    assert error["error"] == "bad_request"
    assert error["message"]


async def test_status_shows_every_region_and_node(routers: Routers, world: World) -> None:
    async with client_from(world, "KR") as client, client.get(f"{url_of(routers.plain)}/hello") as response:
        assert response.status == 200
    status = await get_json(f"{url_of(routers.plain)}/_router/status")
    assert status["wan"] == "off"
    assert [region["id"] for region in status["regions"]] == [region.id for region in world.regions]
    healthy = {region["id"]: region["healthy_nodes"] for region in status["regions"]}
    assert healthy == {region.id: int(region.id in {*REGIONS, ORIGIN_REGION}) for region in world.regions}
    pops = {region["id"]: region["pop"] for region in status["regions"]}
    assert pops["ap-northeast-2"] == "Seoul"
    node = status_node(status, "ap-northeast-2-a")
    assert node["url"].startswith("http://127.0.0.1:")
    assert node["routable"] is True
    assert node["health"] == "up"
    assert node["ejected"] is False
    assert node["ejections_total"] == 0
    assert node["last_ejection_reason"] is None
    assert node["in_flight"] == 0
    assert node["requests_total"] >= 1
    assert 0.0 <= node["utilization"] < 1.0
    assert (await get_json(f"{url_of(routers.wan)}/_router/status"))["wan"] == "model"


def sample(metrics: str, name: str, labels: Mapping[str, str]) -> float:
    """The value of one Prometheus sample (0 when absent); labels match exactly."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


async def fetch_metrics(router: RunningChild) -> str:
    async with aiohttp.ClientSession() as client, client.get(f"{url_of(router)}/metrics") as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/plain")
        return await response.text()


async def test_metrics_count_requests_by_route(routers: Routers, world: World) -> None:
    labels = {"region": "sa-east-1", "node": "sa-east-1-a", "reason": "nearest", "status": "200"}
    before = sample(await fetch_metrics(routers.plain), "router_requests_total", labels)
    async with client_from(world, "BR") as client:
        for _ in range(3):
            async with client.get(f"{url_of(routers.plain)}/hello-fast") as response:
                assert response.status == 200
    metrics = await fetch_metrics(routers.plain)
    assert sample(metrics, "router_requests_total", labels) == before + 3
    assert sample(metrics, "router_request_duration_seconds_count", {"region": "sa-east-1"}) >= 3
    assert sample(metrics, "router_nodes_routable", {"region": "sa-east-1"}) == 1
    assert sample(metrics, "router_nodes_routable", {"region": "us-east-1"}) == 0
    assert "router_retries_total" in metrics


async def test_the_routers_own_healthz_is_not_proxied(routers: Routers) -> None:
    health = await get_json(f"{url_of(routers.plain)}/healthz")
    assert health == {"status": "ok", "router": "router"}


async def test_an_admin_port_keeps_state_and_metrics_off_the_public_port(
    routers: Routers, world: World
) -> None:
    public, admin = url_of(routers.split), routers.split.report.addresses["admin"]
    async with client_from(world, "DE") as client:
        async with client.get(f"{public}/healthz") as health:
            assert health.status == 200  # what a load balancer probes
        for path in ("/metrics", "/_router/status", "/_router/resolve?ip=1.2.3.4", "/_router/faults"):
            async with client.get(public + path) as hidden:
                # Answered by the router itself, never proxied to an edge node's own /metrics.
                assert hidden.status == 404, path
                assert (await hidden.json())["message"] == ADMIN_ELSEWHERE
        async with client.get(f"{public}/hello") as served:
            assert served.status == 200
        async with client.get(f"{admin}/metrics") as metrics:
            assert metrics.status == 200
            assert "router_requests_total" in await metrics.text()
        async with client.get(f"{admin}/_router/status") as status:
            assert status.status == 200
        async with client.get(f"{admin}/hello") as not_proxied:
            assert not_proxied.status == 404


# Bad command lines: `edge-router: message`, non-zero, no traceback.

BAD_COMMAND_LINES: dict[str, tuple[tuple[str, ...], str]] = {
    "unknown-region": (("--edge", "mars-1=http://127.0.0.1:9"), "unknown region 'mars-1'"),
    "no-inventory": ((), "the router needs edge nodes"),
    "two-sources": (
        ("--edge", "ap-northeast-2=http://127.0.0.1:9", "--edges-file", "edges.json"),
        "one inventory source",
    ),
    "bad-trusted-proxy": (
        ("--edge", "ap-northeast-2=http://127.0.0.1:9", "--trusted-proxy", "bogus"),
        "--trusted-proxy",
    ),
    "admin-port-out-of-range": (
        ("--edge", "ap-northeast-2=http://127.0.0.1:9", "--admin-port", "70000"),
        "--admin-port: 70000 is not a TCP port",
    ),
    "admin-token-with-a-space": (
        ("--edge", "ap-northeast-2=http://127.0.0.1:9", "--admin-token", "two words"),
        "--admin-token: must be printable, without spaces",
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Exit:
    code: int | None
    stdout: str
    stderr: str


async def run_router_cli(args: tuple[str, ...], cwd: Path) -> Exit:
    env = {key: value for key, value in os.environ.items() if not key.startswith("EDGE_ROUTER_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "--world", str(WORLD_FILE), "--port", "0", *args,
        cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 40)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Exit(code=process.returncode, stdout=stdout.decode(), stderr=stderr.decode())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bad_command_lines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exit]:
    """Every bad command line run at once (each is a Python start-up: seconds on a slow machine)."""
    cwd = tmp_path_factory.mktemp("cli")
    exits = await asyncio.gather(*(run_router_cli(args, cwd) for args, _ in BAD_COMMAND_LINES.values()))
    return dict(zip(BAD_COMMAND_LINES, exits, strict=True))


@pytest.mark.parametrize("case", list(BAD_COMMAND_LINES))
async def test_bad_command_lines_fail_clearly(bad_command_lines: dict[str, Exit], case: str) -> None:
    result = bad_command_lines[case]
    message = BAD_COMMAND_LINES[case][1]
    assert result.code not in (0, None)
    assert result.stderr.startswith("edge-router: "), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
