"""A node under a real control plane: ``x-edge-app`` follows the assignment that swaps the
app, and the figures its heartbeats carry make ``edgectl stats`` exact whatever the trace
sampling ratio (agreeing with the node's own ``/metrics``)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from geo.world import World
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.edge_node.conftest import REGION, WORLD_FILE, client_from, node_url, write_test_app
from tests.edge_node.test_agent import (
    GEO_HELLO,
    ControlPlane,
    edgectl,
    manifest_with,
    node_spec,
    start_control_plane,
    wait_for_app,
)


async def answer(client: aiohttp.ClientSession, url: str) -> tuple[int, str | None]:
    async with client.get(url) as response:
        await response.read()
        return response.status, response.headers.get("x-edge-app")


async def test_the_header_names_the_version_and_changes_when_an_assignment_swaps_the_app(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    node = await supervisor.start(node_spec(cp, tmp_path / "node"))
    base = node_url(node)
    async with client_from(world, "KR") as client:
        assert await answer(client, f"{base}/hello") == (503, None), "no app: no header"
        assert (await edgectl(cp, "apps", "register", str(GEO_HELLO / "app.toml")))[0] == 0
        assert (await edgectl(cp, "deploy", "geo-hello@1.0.0", "--all"))[0] == 0
        await wait_for_app(node, "1.0.0")
        assert await answer(client, f"{base}/hello") == (200, "geo-hello@1.0.0")  # WAGI
        assert await answer(client, f"{base}/hello-fast") == (200, "geo-hello@1.0.0")  # reactor
        assert await answer(client, f"{base}/nowhere") == (404, "geo-hello@1.0.0")

        newer = manifest_with(tmp_path, version="1.1.0", memory="16MiB")
        assert (await edgectl(cp, "apps", "register", str(newer)))[0] == 0
        seen: list[str | None] = []
        swapped = asyncio.Event()

        async def keep_asking() -> None:
            while not swapped.is_set():
                seen.append((await answer(client, f"{base}/hello"))[1])

        asker = asyncio.create_task(keep_asking())
        assert (await edgectl(cp, "deploy", "geo-hello@1.1.0", "--all"))[0] == 0
        await wait_for_app(node, "1.1.0")
        swapped.set()
        await asker
        # Every answer names one of the two versions, and once the new one answered the
        # old one never did again: the header follows the swap exactly.
        first_new = seen.index("geo-hello@1.1.0")
        assert set(seen[:first_new]) == {"geo-hello@1.0.0"}
        assert set(seen[first_new:]) == {"geo-hello@1.1.0"}
        assert await answer(client, f"{base}/hello") == (200, "geo-hello@1.1.0")


async def node_metrics(node: RunningChild) -> dict[str, float]:
    """``/metrics`` samples by their full name with labels."""
    async with aiohttp.ClientSession() as client, client.get(f"{node_url(node)}/metrics") as response:
        text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


async def stats(cp: ControlPlane, *args: str) -> list[dict[str, Any]]:
    code, output = await edgectl(cp, "stats", "--window", "1m", "-o", "json", *args)
    assert code == 0, output
    rows: list[dict[str, Any]] = json.loads(output)
    return rows


async def test_stats_are_exact_at_a_sampling_ratio_of_a_tenth(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    node = await supervisor.start(
        ChildSpec(
            name="node",
            argv=(
                sys.executable, "-m", "edge_node", "--region", REGION, "--world", str(WORLD_FILE),
                "--data-dir", str(tmp_path / "node"), "--control-plane", cp.address,
                "--trace-sample-ratio", "0.1",
            ),
            env={"EDGE_NODE_TOKEN": cp.tokens["node"]},
        )
    )  # fmt: skip
    assert (await edgectl(cp, "apps", "register", str(write_test_app(tmp_path / "app"))))[0] == 0
    assert (await edgectl(cp, "deploy", "edge-test@1.2.3", "--all"))[0] == 0
    await wait_for_app(node, "1.2.3")
    base = node_url(node)

    plan = ["/m/env"] * 300 + ["/m/trap"] * 40 + ["/nowhere"] * 20

    async def worker(paths: list[str]) -> None:
        async with client_from(world, "KR") as client:
            for path in paths:
                await answer(client, base + path)

    await asyncio.gather(*(worker(plan[i::8]) for i in range(8)))
    metrics = await node_metrics(node)
    label = '{app="edge-test",version="1.2.3"}'
    assert metrics[f"edge_app_requests_total{label}"] == len(plan)
    assert metrics[f"edge_app_server_errors_total{label}"] == 40

    deadline = time.monotonic() + 15
    while True:  # the next heartbeat (every second) brings the figures
        (row,) = await stats(cp) or [{"requests": 0, "source": "nodes"}]
        assert row["source"] == "nodes", (
            "edgectl stats is counted from spans: control_plane/server.py must hand the fleet's "
            f"figures to TraceQueryServicer (figures=fleet.figures); got {row}"
        )
        if row["requests"] >= len(plan):
            break
        assert time.monotonic() < deadline, row
        await asyncio.sleep(0.3)
    assert (row["region"], row["app_version"]) == (REGION, "1.2.3")
    assert (row["requests"], row["errors"]) == (len(plan), 40)  # exact, though only ~10% traced
    assert 0 < row["p50_ms"] <= row["p99_ms"]

    by_route = {r["route"]: r for r in await stats(cp, "--by-route")}
    assert by_route["*"]["requests"] == len(plan)
    sampled = by_route.get("/m/env")
    if sampled is not None:  # ~30 of 300 requests were traced
        assert sampled["partial"]
        assert "sampled or dropped" in sampled["partial_reason"]
