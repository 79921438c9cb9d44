"""The router connected to a real control plane: it follows the live node inventory, and one
trace spans router and edge node with correct parentage (client -> router SERVER span ->
router CLIENT hop -> edge node SERVER span -> stage spans)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from geo.world import World
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.edge_node.conftest import WORLD_FILE, client_from, write_test_app
from tests.edge_node.test_agent import ControlPlane, edgectl, start_control_plane, wait_for_app
from tests.edge_node.test_tracing import wait_for_trace

pytestmark = pytest.mark.slow

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


def node_spec(cp: ControlPlane, data_dir: Path, region: str, node_id: str) -> ChildSpec:
    return ChildSpec(
        name=node_id,
        argv=(
            sys.executable, "-m", "edge_node", "--region", region, "--node-id", node_id,
            "--world", str(WORLD_FILE), "--data-dir", str(data_dir), "--control-plane", cp.address,
            "--trusted-proxy", "127.0.0.1/32", "--geo-cache-dir", str(data_dir.parent / "geo"),
        ),
        env={"EDGE_NODE_TOKEN": cp.tokens["node"]},
    )  # fmt: skip


async def start_router(supervisor: Supervisor, cp: ControlPlane, tmp_path: Path) -> str:
    router = await supervisor.start(
        ChildSpec(
            name="router",
            argv=(
                sys.executable, "-m", "router", "--world", str(WORLD_FILE), "--control-plane", cp.address,
                "--wan", "off", "--health-interval", "0.2", "--geo-cache-dir", str(tmp_path / "geo"),
            ),
            env={"EDGE_ROUTER_TOKEN": cp.tokens["node"]},
        )
    )  # fmt: skip
    return router.report.addresses["http"]


async def routed_nodes(router: str) -> dict[str, dict[str, Any]]:
    async with aiohttp.ClientSession() as client, client.get(f"{router}/_router/status") as response:
        status = await response.json()
    return {node["node_id"]: node for region in status["regions"] for node in region["nodes"]}


async def wait_until(router: str, check: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check(await routed_nodes(router)):
        assert time.monotonic() < deadline, f"the router never saw {what}: {await routed_nodes(router)}"
        await asyncio.sleep(0.1)


async def deployed_world(supervisor: Supervisor, tmp_path: Path) -> tuple[ControlPlane, RunningChild]:
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    node = await supervisor.start(node_spec(cp, tmp_path / "seoul", "ap-northeast-2", "seoul-a"))
    assert (await edgectl(cp, "apps", "register", str(write_test_app(tmp_path / "app"))))[0] == 0
    assert (await edgectl(cp, "deploy", "edge-test@1.2.3", "--all"))[0] == 0
    await wait_for_app(node, "1.2.3")
    return cp, node


async def test_one_trace_spans_router_and_edge_node(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp, _ = await deployed_world(supervisor, tmp_path)
    router = await start_router(supervisor, cp, tmp_path)
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    async with (
        client_from(world, "KR") as client,
        client.get(f"{router}/m/env", headers={"traceparent": traceparent}) as response,
    ):
        assert response.status == 200, await response.text()
        assert "region=ap-northeast-2; node=seoul-a; reason=nearest" in response.headers["x-edge-route"]

    spans = await wait_for_trace(cp, CLIENT_TRACE, 6)
    by_id = {span["span_id"]: span for span in spans}
    route = next(s for s in spans if s["service"] == "edge-router" and s["kind"] == "SERVER")
    hop = next(s for s in spans if s["service"] == "edge-router" and s["kind"] == "CLIENT")
    edge = next(s for s in spans if s["service"] == "edge-node" and s["kind"] == "SERVER")
    assert route["parent_span_id"] == CLIENT_SPAN
    assert hop["parent_span_id"] == route["span_id"]
    assert edge["parent_span_id"] == hop["span_id"]
    stages = [s for s in spans if s["parent_span_id"] == edge["span_id"]]
    assert {s["name"] for s in stages} >= {"client", "geo", "route"}
    assert all(s["trace_id"] == CLIENT_TRACE for s in spans)
    attributes = route["attributes"]
    assert attributes["edgecdn.client.country"] == "KR"
    assert attributes["edgecdn.route.region"] == "ap-northeast-2"
    assert attributes["edgecdn.route.node"] == "seoul-a"
    assert attributes["edgecdn.route.reason"] == "nearest"
    assert float(attributes["edgecdn.wan.delay_ms"]) == 0
    # The edge node believed the router's X-Forwarded-For: the client is the Korean address.
    assert edge["attributes"]["client.address"] == world.country("KR").client_address()
    assert set(by_id) == {s["span_id"] for s in spans}


async def test_router_follows_nodes_that_join_and_leave(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp, _ = await deployed_world(supervisor, tmp_path)
    router = await start_router(supervisor, cp, tmp_path)
    assert set(await routed_nodes(router)) == {"seoul-a"}

    # A node joins Frankfurt: routed to within seconds, German clients go there.
    frankfurt = await supervisor.start(node_spec(cp, tmp_path / "fra", "eu-central-1", "frankfurt-a"))
    await wait_for_app(frankfurt, "1.2.3")
    await wait_until(router, lambda nodes: "frankfurt-a" in nodes, "frankfurt-a join")
    async with client_from(world, "DE") as client, client.get(f"{router}/m/env") as response:
        assert response.status == 200
        assert "region=eu-central-1; node=frankfurt-a; reason=nearest" in response.headers["x-edge-route"]

    # It leaves: no longer routable within seconds, German clients fail over to Seoul.
    frankfurt.process.terminate()
    await frankfurt.process.wait()
    await wait_until(
        router, lambda nodes: not nodes.get("frankfurt-a", {}).get("routable"), "frankfurt-a leave"
    )
    async with client_from(world, "DE") as client, client.get(f"{router}/m/env") as response:
        assert response.status == 200
        assert "region=ap-northeast-2; node=seoul-a; reason=failover" in response.headers["x-edge-route"]
