"""Failover and recovery with real processes: nodes killed with SIGKILL under load, a
whole region lost and restarted on its old port, no node left anywhere, and a request
with a body resent after a refused connection.

Each test owns its processes (they are killed on purpose). Routers check health every
0.2 s, so a dead node is down within half a second even without traffic. Where only the
router's view of a node matters, a dead port or a stand-in node of the test stands in
for an edge node process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from geo.latency import LatencyModel
from geo.world import World
from simulator.supervisor import RunningChild, Supervisor
from tests.router.conftest import (
    KOREAN_HELLO,
    edge_flags,
    eventually,
    free_port,
    get_json,
    node_spec,
    port_of,
    route_of,
    router_spec,
    router_status,
    status_node,
    stub_edge,
    url_of,
)

pytestmark = pytest.mark.slow

FAST_HEALTH = ("--health-interval", "0.2", "--health-timeout", "0.5", "--wan", "off")
SEOUL = "ap-northeast-2"
WORKERS = 8
LOAD_BEFORE_KILL_S = 0.5
LOAD_AFTER_KILL_S = 2.2
MOVED_WITHIN_S = 2.0
MAX_FAILURE_SHARE = 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    worker: int
    started: float
    finished: float
    status: int  # 0: the client saw no HTTP answer at all
    node: str


async def load(router: RunningChild, world: World, worker: int, stop: asyncio.Event) -> list[Outcome]:
    """One Korean client (its own address) sending requests one after another until ``stop``."""
    outcomes: list[Outcome] = []
    address = world.country("KR").client_address(worker + 1)
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with client.get(f"{url_of(router)}/hello-fast") as response:
                    await response.read()
                    status = response.status
                    node = route_of(response)["node"] if "x-edge-route" in response.headers else ""
            except (aiohttp.ClientError, TimeoutError):
                status, node = 0, ""
            outcomes.append(
                Outcome(worker=worker, started=started, finished=time.monotonic(), status=status, node=node)
            )
    return outcomes


async def resolve_node(router: RunningChild, address: str) -> str:
    answer = await get_json(f"{url_of(router)}/_router/resolve?ip={address}")
    node: str = answer["route"]["node_id"]
    return node


async def fetch_hello(router: RunningChild, world: World, country: str) -> tuple[int, str, dict[str, str]]:
    address = world.country(country).client_address()
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as client,
        client.get(f"{url_of(router)}/hello") as response,
    ):
        body = await response.text()
        route = route_of(response) if "x-edge-route" in response.headers else {}
        return response.status, body, route


async def test_a_killed_node_loses_its_traffic_to_its_neighbour_without_failures(
    supervisor: Supervisor, world: World, geo_cache_dir: Path, edge_data_dir: Path
) -> None:
    first, second = await supervisor.start_group(
        [node_spec(SEOUL, edge_data_dir, geo_cache_dir, node_id=f"{SEOUL}-{n}") for n in ("a", "b")]
    )
    router = await supervisor.start(
        router_spec(
            geo_cache_dir, *FAST_HEALTH,
            "--edge", f"{SEOUL}/{SEOUL}-a={url_of(first)}", "--edge", f"{SEOUL}/{SEOUL}-b={url_of(second)}",
        )
    )  # fmt: skip
    # The node the first worker's address hashes to is the one that dies: it carries traffic.
    victim_id = await resolve_node(router, world.country("KR").client_address(1))
    victim, survivor = (first, second) if victim_id == f"{SEOUL}-a" else (second, first)
    survivor_id = f"{SEOUL}-b" if victim is first else f"{SEOUL}-a"
    victims_workers = {
        worker
        for worker in range(WORKERS)
        if await resolve_node(router, world.country("KR").client_address(worker + 1)) == victim_id
    }

    stop = asyncio.Event()
    workers = [asyncio.create_task(load(router, world, worker, stop)) for worker in range(WORKERS)]
    await asyncio.sleep(LOAD_BEFORE_KILL_S)
    victim.process.kill()
    await victim.process.wait()
    killed_at = time.monotonic()
    await asyncio.sleep(LOAD_AFTER_KILL_S)
    stop.set()
    outcomes = [outcome for results in await asyncio.gather(*workers) for outcome in results]

    failures = [o for o in outcomes if o.status != 200]
    assert len(outcomes) > 100, "too little load to judge"
    assert len(failures) <= MAX_FAILURE_SHARE * len(outcomes), (len(failures), len(outcomes), failures[:5])
    before = [o for o in outcomes if o.finished < killed_at]
    assert any(o.node == victim_id for o in before), "the victim served traffic before it died"
    after = [o for o in outcomes if o.started > killed_at and o.status == 200]
    assert after
    assert all(o.node == survivor_id for o in after), "a dead node cannot answer"
    # Its clients were served again within MOVED_WITHIN_S, and no request waited that long.
    for worker in victims_workers:
        moved = [o.finished for o in after if o.worker == worker]
        assert moved, f"worker {worker} got no answer after the kill"
        assert min(moved) - killed_at < MOVED_WITHIN_S
    assert max(o.finished - o.started for o in outcomes) < MOVED_WITHIN_S

    status = await router_status(router)
    dead = status_node(status, victim_id)
    assert dead["routable"] is False
    assert dead["ejections_total"] >= 1, "connect failures eject the node at once (passive health)"
    assert dead["last_ejection_reason"].startswith("connect")
    assert dead["health"] == "down", "and active checks agree"
    assert status_node(status, survivor_id)["routable"] is True
    region = next(r for r in status["regions"] if r["id"] == SEOUL)
    assert region["healthy_nodes"] == 1
    assert survivor.process.returncode is None
    async with aiohttp.ClientSession() as client, client.get(f"{url_of(router)}/metrics") as response:
        metrics = await response.text()
    retries = next(line for line in metrics.splitlines() if line.startswith("router_retries_total "))
    assert float(retries.split()[1]) >= 1, "requests that met the dead node were retried on its neighbour"


async def test_a_dead_region_fails_over_to_the_next_nearest_and_returns_after_a_restart(
    supervisor: Supervisor, world: World, geo_cache_dir: Path, edge_data_dir: Path
) -> None:
    regions = (SEOUL, "ap-northeast-1")
    seoul, _tokyo = nodes = await supervisor.start_group(
        [node_spec(region, edge_data_dir, geo_cache_dir) for region in regions]
    )
    edges = edge_flags(regions, nodes)
    # A farther region too (a stand-in node), so "next nearest" is a choice.
    async with stub_edge("mumbai") as mumbai:
        router = await supervisor.start(
            router_spec(geo_cache_dir, *FAST_HEALTH, *edges, "--edge", f"ap-south-1={mumbai}")
        )  # fmt: skip
        ranking = [region.id for region, _ in LatencyModel(world).regions_by_rtt(world.country("KR"))]
        assert ranking.index("ap-northeast-1") < ranking.index("ap-south-1")

        status, body, route = await fetch_hello(router, world, "KR")
        assert (status, route["region"], route["reason"]) == (200, SEOUL, "nearest")

        seoul.process.kill()
        await seoul.process.wait()
        status, body, route = await fetch_hello(router, world, "KR")
        assert status == 200, body  # the connect failure is retried on the next candidate
        assert route["region"] == "ap-northeast-1"
        assert route["reason"] == "failover"
        assert body.startswith(KOREAN_HELLO)
        assert "Your country: KR. Served by edge region ap-northeast-1." in body

        async def seoul_is_down() -> bool:
            status = await router_status(router)
            return bool(status_node(status, f"{SEOUL}-a")["health"] == "down")

        await eventually(seoul_is_down, within_s=3, what="active checks mark the dead node down")
        for _ in range(3):
            status, body, route = await fetch_hello(router, world, "KR")
            assert (status, route["region"]) == (200, "ap-northeast-1"), body

        # The node comes back on its old address: the router notices on its own.
        restarted = await supervisor.start(
            node_spec(SEOUL, edge_data_dir, geo_cache_dir, port=port_of(seoul), name="node-seoul-restarted")
        )
        assert url_of(restarted) == url_of(seoul)

        async def korea_is_home_again() -> bool:
            status, _, route = await fetch_hello(router, world, "KR")
            return status == 200 and route["region"] == SEOUL and route["reason"] == "nearest"

        await eventually(korea_is_home_again, within_s=3, interval_s=0.1, what="KR traffic returns to Seoul")
        status, body, _ = await fetch_hello(router, world, "KR")
        assert body.startswith(KOREAN_HELLO)
        assert "Served by edge region ap-northeast-2." in body


async def test_traffic_to_the_next_region_says_failover_while_the_nearest_is_down(
    supervisor: Supervisor, world: World, geo_cache_dir: Path
) -> None:
    """Not only the retry after a connect failure: every request while Seoul is down (a regression
    test: the policy once called the first region with a healthy node 'nearest')."""
    async with stub_edge("tokyo") as tokyo:
        router = await supervisor.start(
            router_spec(
                geo_cache_dir, *FAST_HEALTH,
                "--edge", f"{SEOUL}=http://127.0.0.1:{free_port()}", "--edge", f"ap-northeast-1={tokyo}",
            )
        )  # fmt: skip

        async def seoul_is_down() -> bool:
            status = await router_status(router)
            return bool(status_node(status, f"{SEOUL}-a")["health"] == "down")

        await eventually(seoul_is_down, within_s=3, what="active checks mark the dead node down")
        address = world.country("KR").client_address()
        resolved = await get_json(f"{url_of(router)}/_router/resolve?ip={address}")
        status, body, route = await fetch_hello(router, world, "KR")
    assert (status, json.loads(body)["name"], route["region"]) == (200, "tokyo", "ap-northeast-1")
    assert resolved["route"]["region"] == "ap-northeast-1"
    assert route["reason"] == "failover"
    assert resolved["route"]["reason"] == "failover"


async def test_no_node_anywhere_is_a_clear_503(
    supervisor: Supervisor, world: World, geo_cache_dir: Path
) -> None:
    dead_port = free_port()
    router = await supervisor.start(
        router_spec(geo_cache_dir, *FAST_HEALTH, "--edge", f"{SEOUL}=http://127.0.0.1:{dead_port}")
    )

    async def nothing_routable() -> bool:
        status = await router_status(router)
        return all(region["healthy_nodes"] == 0 for region in status["regions"])

    await eventually(nothing_routable, within_s=3, what="the only node is marked down")
    address = world.country("KR").client_address()
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as client,
        client.get(f"{url_of(router)}/hello") as response,
    ):
        assert response.status == 503
        assert response.headers["content-type"].startswith("application/json")
        error = await response.json()
    assert error["error"] == "no_healthy_node"
    assert error["message"]
    resolved = await get_json(f"{url_of(router)}/_router/resolve?ip={address}")
    assert resolved["route"] is None
    assert resolved["candidates"] == []


async def test_a_post_refused_by_its_first_node_is_resent_whole_to_the_next(
    supervisor: Supervisor, world: World, geo_cache_dir: Path
) -> None:
    cape_town = "af-south-1"
    async with stub_edge("echo") as echo:
        # Slow active checks: the dead node is still believed up when the request comes.
        router = await supervisor.start(
            router_spec(
                geo_cache_dir, "--health-interval", "30", "--wan", "off",
                "--edge", f"{cape_town}/dead=http://127.0.0.1:{free_port()}",
                "--edge", f"{cape_town}/echo={echo}",
            )
        )  # fmt: skip
        # A client whose address hashes to the dead node first.
        for index in range(1, 64):
            client_address = world.country("ZA").client_address(index)
            if await resolve_node(router, client_address) == "dead":
                break
        else:
            pytest.fail("no client address hashes to the dead node first")
        data = os.urandom(1024 * 1024)
        connector = aiohttp.TCPConnector(local_addr=(client_address, 0), force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as client,
            client.post(f"{url_of(router)}/upload", data=data) as response,
        ):
            assert response.status == 200, await response.text()
            route = route_of(response)
            echoed = await response.json()
        status = await router_status(router)
    assert route["node"] == "echo"
    assert echoed == {"name": "echo", "length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    dead = status_node(status, "dead")
    assert dead["ejections_total"] == 1
    assert dead["last_ejection_reason"].startswith("connect")
