"""The edge node's traces, end to end: a real control plane collects what a real node
exports; a client's traceparent is continued; statistics match a known request mix."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from geo.world import World
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.edge_node.conftest import REGION, WORLD_FILE, client_from, node_url, write_test_app
from tests.edge_node.test_agent import ControlPlane, edgectl, start_control_plane, wait_for_app

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


async def wait_for_trace(
    cp: ControlPlane, trace_id: str, spans: int, timeout_s: float = 15
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        code, output = await edgectl(cp, "traces", "show", trace_id, "-o", "json")
        if code == 0 and len(found := json.loads(output)) >= spans:
            return found  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, output
        await asyncio.sleep(0.2)


async def get(world: World, url: str, headers: dict[str, str] | None = None) -> int:
    async with client_from(world, "KR") as client, client.get(url, headers=headers) as response:
        await response.read()
        if headers and "traceparent" in headers and headers["traceparent"].endswith("-01"):
            # Trace Context Level 2: the response names the trace and the server span.
            version, trace_id, span_id, flags = response.headers["traceresponse"].split("-")
            assert (version, trace_id, flags) == ("00", headers["traceparent"].split("-")[1], "01")
            assert len(span_id) == 16
        return response.status


async def test_node_traces_reach_the_control_plane_with_stats(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    node = await supervisor.start(
        ChildSpec(
            name="node",
            argv=(
                sys.executable, "-m", "edge_node", "--region", REGION, "--world", str(WORLD_FILE),
                "--data-dir", str(tmp_path / "node"), "--control-plane", cp.address,
            ),
            env={"EDGE_NODE_TOKEN": cp.tokens["node"]},
        )
    )  # fmt: skip
    manifest = write_test_app(tmp_path / "app")
    assert (await edgectl(cp, "apps", "register", str(manifest)))[0] == 0
    assert (await edgectl(cp, "deploy", "edge-test@1.2.3", "--all"))[0] == 0
    await wait_for_app(node, "1.2.3")
    base = node_url(node)

    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    assert await get(world, f"{base}/m/env", {"traceparent": traceparent}) == 200
    spans = await wait_for_trace(cp, CLIENT_TRACE, 5)
    by_name = {s["name"]: s for s in spans}
    server = by_name["GET /m/env"]
    assert server["parent_span_id"] == CLIENT_SPAN
    assert server["service"] == "edge-node"
    assert server["kind"] == "SERVER"
    attributes = server["attributes"]
    assert attributes["edgecdn.app.version"] == "1.2.3"
    assert attributes["edgecdn.region"] == REGION
    assert attributes["service.instance.id"] == f"{REGION}-a"
    assert attributes["http.route"] == "/m/env"
    assert attributes["http.response.status_code"] == "200"
    assert attributes["edgecdn.client.country"] == "KR"
    for stage in ("client", "geo", "route", "wasm env"):
        assert by_name[stage]["parent_span_id"] == server["span_id"], stage
    wasm = by_name["wasm env"]["attributes"]
    assert wasm["edgecdn.wasm.abi"] == "wagi"
    assert len(wasm["edgecdn.wasm.digest"]) == 64
    assert wasm["edgecdn.wasm.outcome"] == "ok"
    assert float(wasm["edgecdn.wasm.duration_ms"]) > 0
    assert by_name["wasm env"]["duration_ms"] <= server["duration_ms"]

    # A known mix: 20 good requests, 5 traps (500: errors), 3 unknown routes (404: not errors).
    for _ in range(20):
        assert await get(world, f"{base}/m/env") == 200
    for _ in range(5):
        assert await get(world, f"{base}/m/trap") == 500
    for _ in range(3):
        assert await get(world, f"{base}/nowhere") == 404
    deadline = time.monotonic() + 15
    while True:
        code, output = await edgectl(cp, "stats", "--window", "5m", "--by-route", "-o", "json")
        rows = {row["route"]: row for row in json.loads(output)} if code == 0 else {}
        # Route rows come from spans; "*" is the version's exact total from the node's figures.
        counts = {route: row["requests"] for route, row in rows.items() if route != "*"}
        if counts == {"/m/env": 21, "/m/trap": 5, None: 3}:
            break
        assert time.monotonic() < deadline, output
        await asyncio.sleep(0.2)
    env, trap = rows["/m/env"], rows["/m/trap"]
    assert (env["region"], env["app_version"], env["errors"]) == (REGION, "1.2.3", 0)
    assert (trap["errors"], trap["error_rate"]) == (5, 1.0)
    assert 0 < env["p50_ms"] <= env["p95_ms"] <= env["p99_ms"]
    deadline = time.monotonic() + 15
    while True:  # the node's figures come with its next heartbeat
        code, output = await edgectl(cp, "stats", "--window", "5m", "-o", "json")
        (total,) = json.loads(output)
        # 404s are requests the app version answered (no route matched), not errors.
        if (total["requests"], total["errors"]) == (29, 5):
            break
        assert time.monotonic() < deadline, output
        await asyncio.sleep(0.2)
    assert (rows[None]["requests"], rows[None]["errors"]) == (3, 0)

    code, output = await edgectl(
        cp, "traces", "list", "--errors", "--region", REGION, "--limit", "50", "-o", "json"
    )
    failed = json.loads(output)
    assert len(failed) == 5
    assert all(t["status"] == "error" and t["root_service"] == "edge-node" for t in failed)
    trap_trace = await wait_for_trace(cp, failed[0]["trace_id"], 4)
    trap_wasm = next(s for s in trap_trace if s["name"] == "wasm trap")
    assert trap_wasm["status"] == "error"
    assert trap_wasm["attributes"]["edgecdn.wasm.outcome"] == "handler_trap"


async def test_unsampled_requests_are_not_recorded_but_sampled_callers_are(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    app = write_test_app(tmp_path / "app")
    node: RunningChild = await supervisor.start(
        ChildSpec(
            name="node",
            argv=(
                sys.executable, "-m", "edge_node", "--app", str(app), "--region", REGION,
                "--world", str(WORLD_FILE), "--data-dir", str(tmp_path / "node"),
                "--trace-sample-ratio", "0",
            ),
            # The standard OTel variables: any OTLP collector, here the control plane.
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{cp.address}",
                "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{cp.tokens['node']}",
            },
        )
    )  # fmt: skip
    base = node_url(node)
    for _ in range(10):
        assert await get(world, f"{base}/m/env") == 200
    unsampled = f"00-{'1' * 32}-{CLIENT_SPAN}-00"
    assert await get(world, f"{base}/m/env", {"traceparent": unsampled}) == 200
    assert await get(world, f"{base}/m/env", {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}) == 200
    spans = await wait_for_trace(cp, CLIENT_TRACE, 5)
    assert {s["service"] for s in spans} == {"edge-node"}
    code, output = await edgectl(cp, "traces", "list", "--service", "edge-node", "-o", "json")
    assert code == 0, output
    assert [t["trace_id"] for t in json.loads(output)] == [CLIENT_TRACE]
    async with aiohttp.ClientSession() as client, client.get(f"{base}/healthz") as response:
        assert response.status == 200


async def test_origin_fetch_is_a_client_span_and_the_origin_continues_the_trace(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    seen: list[str] = []

    async def origin_handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent", ""))
        return web.Response(text="from origin", headers={"cache-control": "max-age=60"})

    origin_app = web.Application()
    origin_app.router.add_get("/{tail:.*}", origin_handler)
    runner = web.AppRunner(origin_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        app_dir = tmp_path / "origin-app"
        app_dir.mkdir()
        (app_dir / "app.toml").write_text(
            f'[app]\nname = "cdn"\nversion = "2.0.0"\n[[route]]\npath = "/o/..."\norigin = "http://127.0.0.1:{port}"\n'
        )
        cp = await start_control_plane(supervisor, tmp_path / "cp")
        node = await supervisor.start(
            ChildSpec(
                name="node",
                argv=(
                    sys.executable, "-m", "edge_node", "--app", str(app_dir / "app.toml"), "--region", REGION,
                    "--world", str(WORLD_FILE), "--data-dir", str(tmp_path / "node"),
                ),
                env={
                    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{cp.address}",
                    "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{cp.tokens['node']}",
                },
            )
        )  # fmt: skip
        url = f"{node_url(node)}/o/page"
        assert await get(world, url, {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}) == 200
        spans = await wait_for_trace(cp, CLIENT_TRACE, 6)
        by_name = {s["name"]: s for s in spans}
        fetch = by_name["GET origin"]
        assert fetch["kind"] == "CLIENT"
        assert fetch["attributes"]["url.full"] == f"http://127.0.0.1:{port}/o/page"
        assert fetch["attributes"]["http.response.status_code"] == "200"
        assert fetch["attributes"]["edgecdn.cache"] == "MISS"
        assert by_name["cache"]["parent_span_id"] == by_name["GET /o/..."]["span_id"]
        # The origin was told to continue the trace under the origin span.
        assert seen == [f"00-{CLIENT_TRACE}-{fetch['span_id']}-01"]

        again = "1" * 32
        assert await get(world, url, {"traceparent": f"00-{again}-{CLIENT_SPAN}-01"}) == 200
        cached = {s["name"]: s for s in await wait_for_trace(cp, again, 5)}
        assert "GET origin" not in cached
        assert cached["GET /o/..."]["attributes"]["edgecdn.cache"] == "HIT"
        assert len(seen) == 1
        async with client_from(world, "KR") as client:  # origin and cache answers name the app too
            for outcome in ("MISS", "HIT"):
                async with client.get(f"{node_url(node)}/o/other") as response:
                    assert response.headers["x-cache"] == outcome
                    assert response.headers["x-edge-app"] == "cdn@2.0.0"
    finally:
        await runner.cleanup()
