"""``edge-node --workers N`` as real processes: one port served by every worker, the node's
metrics summed, a worker killed -9 restarted while the others serve, workers gone with their
supervisor, and one control-plane session that applies and purges on every worker."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from simulator.supervisor import RunningChild, Supervisor
from tests.edge_node.conftest import REGION, edge_node_spec, node_url, write_test_app
from tests.edge_node.test_agent import GEO_HELLO, edgectl, node_spec, start_control_plane, wait_for_app

WORKERS = 2


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def worker_of_new_connection(url: str) -> dict[str, int]:
    """Which worker accepts a new connection (the kernel picks, as for any client)."""
    async with aiohttp.ClientSession() as client, client.get(f"{url}/_edge/info") as response:
        return dict((await response.json())["worker"])


async def workers_seen(url: str, tries: int = 200) -> dict[int, int]:
    """Worker index -> pid, over new connections until each worker answered once."""
    seen: dict[int, int] = {}
    for _ in range(tries):
        worker = await worker_of_new_connection(url)
        seen[worker["index"]] = worker["pid"]
        if len(seen) == WORKERS:
            break
    return seen


async def requests_counted(url: str, route: str) -> float:
    async with aiohttp.ClientSession() as client, client.get(f"{url}/metrics") as response:
        text = await response.text()
    prefix = f'edge_requests_total{{route="{route}",status="200"}} '
    return sum(float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix))


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
async def node(supervisor: Supervisor, tmp_path: Path) -> RunningChild:
    app = write_test_app(tmp_path / "app")
    return await supervisor.start(edge_node_spec(app, tmp_path / "data", "--workers", str(WORKERS)))


async def test_every_worker_serves_the_port_and_metrics_are_the_nodes(node: RunningChild) -> None:
    url = node_url(node)
    seen = await workers_seen(url)
    assert sorted(seen) == list(range(WORKERS))
    assert len(set(seen.values())) == WORKERS  # distinct processes
    async with aiohttp.ClientSession() as client:
        for _ in range(40):  # each on a new connection: spread over the workers
            async with client.get(f"{url}/m/env", headers={"connection": "close"}) as response:
                assert response.status == 200

    async def all_counted() -> bool:
        return await requests_counted(url, "/m/env") == 40

    await eventually(all_counted, "every worker's requests are in /metrics")


async def test_a_worker_killed_is_restarted_and_its_counts_stay(node: RunningChild) -> None:
    url = node_url(node)
    async with aiohttp.ClientSession() as client:
        for _ in range(30):
            async with client.get(f"{url}/m/env", headers={"connection": "close"}) as response:
                assert response.status == 200

    async def all_counted() -> bool:
        return await requests_counted(url, "/m/env") == 30

    await eventually(all_counted, "the requests are counted")
    before = await workers_seen(url)
    os.kill(before[1], signal.SIGKILL)

    async def replaced() -> bool:
        now = await workers_seen(url, tries=20)
        return now.get(1) not in (None, before[1])

    await eventually(replaced, "worker 1 is restarted")

    async def still_counted() -> bool:  # on every worker, the restarted one too
        counts = []
        async with aiohttp.ClientSession() as client:
            for _ in range(10):
                async with client.get(f"{url}/metrics", headers={"connection": "close"}) as response:
                    text = await response.text()
                counts.append('edge_requests_total{route="/m/env",status="200"} 30.0' in text)
        return all(counts)

    # A dead worker's counters are kept by the supervisor; a new worker shows them from its
    # first exchange with it (metrics are summed from pushes, every 0.5 s).
    await eventually(still_counted, "the dead worker's requests are still counted on every worker")


async def test_workers_go_with_their_supervisor(node: RunningChild) -> None:
    pids = (await workers_seen(node_url(node))).values()
    os.kill(node.pid, signal.SIGKILL)

    async def all_gone() -> bool:
        return all(pid_gone(pid) for pid in pids)

    await eventually(all_gone, "every worker exits after its supervisor's kill -9")


async def test_one_session_applies_and_purges_on_every_worker(supervisor: Supervisor, tmp_path: Path) -> None:
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    spec = node_spec(cp, tmp_path / "node")
    node = await supervisor.start(dataclasses.replace(spec, argv=(*spec.argv, "--workers", str(WORKERS))))
    assert (await edgectl(cp, "apps", "register", str(GEO_HELLO / "app.toml")))[0] == 0
    assert (await edgectl(cp, "deploy", "geo-hello@1.0.0", "--all"))[0] == 0
    await wait_for_app(node, "1.0.0")
    url = node_url(node)
    async with aiohttp.ClientSession() as client:
        for _ in range(60):  # a new connection each: whichever worker gets it serves the app
            async with client.get(f"{url}/readyz", headers={"connection": "close"}) as response:
                assert (await response.json())["version"] == "1.0.0"
    code, output = await edgectl(cp, "nodes", "list", "-o", "json")
    assert code == 0, output
    assert [n["node_id"] for n in json.loads(output)] == [f"{REGION}-a"]  # one node, not one per worker
    code, output = await edgectl(cp, "cache", "purge", "--all", "-o", "json")
    assert code == 0, output
    (row,) = json.loads(output)["regions"]
    assert (row["nodes_done"], row["late_node_ids"]) == (1, [])
