"""``edgecdn up`` as a user meets it: a real supervisor process with real children.

It must start, publish world.json, stop on SIGTERM or Ctrl-C within 5 seconds with no
process left behind (even when the supervisor itself is SIGKILLed), refuse a second
world, and reject a bad world file with a message naming the key.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from geo.world import load_world
from runtime.world_state import WorldState, read_world_state
from tests.conftest import REPO_ROOT

DEFAULT_WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"
START_TIMEOUT_S = 45.0
STOP_BUDGET_S = 5.0


@dataclass
class RunningWorld:
    process: asyncio.subprocess.Process
    state_dir: Path
    state: WorldState

    @property
    def child_pids(self) -> list[int]:
        return [entry.pid for entry in self.state.processes]


async def start_world(state_dir: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "up",
        "--world",
        str(DEFAULT_WORLD),
        "--state-dir",
        str(state_dir),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )


async def wait_for_state(process: asyncio.subprocess.Process, state_dir: Path) -> WorldState:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.returncode is not None:
            _, err = await process.communicate()
            pytest.fail(f"edgecdn up exited early ({process.returncode}): {err.decode()}")
        if (state_dir / "world.json").exists():
            return read_world_state(state_dir / "world.json")
        await asyncio.sleep(0.05)
    pytest.fail("edgecdn up did not write world.json in time")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; /proc says so.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


async def wait_gone(pids: list[int], budget_s: float) -> list[int]:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        await asyncio.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


async def running_world(state_dir: Path) -> AsyncIterator[RunningWorld]:
    process = await start_world(state_dir)
    try:
        state = await wait_for_state(process, state_dir)
        yield RunningWorld(process=process, state_dir=state_dir, state=state)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningWorld]:
    """One world for the tests that only look at it (starting nine processes takes seconds)."""
    async for running in running_world(tmp_path_factory.mktemp("shared") / "state"):
        yield running


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[RunningWorld]:
    """A world of the test's own, for tests that stop or kill it."""
    async for running in running_world(tmp_path / "state"):
        yield running


@pytest.mark.asyncio(loop_scope="module")
async def test_every_region_runs_its_edge_nodes(shared_world: RunningWorld) -> None:
    model = load_world(DEFAULT_WORLD)
    expected = {f"{region.id}-a" for region in model.regions if region.edge_nodes}
    assert {node.node_id for node in shared_world.state.edge_nodes} == expected
    async with aiohttp.ClientSession() as client:
        for node in shared_world.state.edge_nodes:
            async with client.get(f"{node.url}/readyz") as response:
                assert response.status == 200, node
            async with client.get(f"{node.url}/_edge/info") as response:
                info = await response.json()
            assert info["region"] == node.region
            assert info["app"]["name"] == "geo-hello"


async def get_from(country: str, url: str) -> tuple[int, str, dict[str, str]]:
    """GET ``url`` from a simulated client of ``country``: the socket bound to the address
    `edgecdn world addr CC` prints (tests/simulator/test_world_cmd.py runs that command)."""
    address = load_world(DEFAULT_WORLD).country(country).client_address()
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as client, client.get(url) as response:
        return response.status, await response.text(), dict(response.headers)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("country", "region", "greeting"),
    [("KR", "ap-northeast-2", "안녕하세요"), ("JP", "ap-northeast-1", "こんにちは")],
)
async def test_readme_tour_greets_each_client_in_its_language(
    shared_world: RunningWorld, country: str, region: str, greeting: str
) -> None:
    # README: curl --interface $(edgecdn world addr KR) <ap-northeast-2 node URL>/hello
    node = next(node for node in shared_world.state.edge_nodes if node.region == region)
    status, text, headers = await get_from(country, f"{node.url}/hello")
    assert status == 200
    assert greeting in text
    assert headers["x-edge-region"] == region


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("country", "region", "greeting"),
    [
        ("KR", "ap-northeast-2", "안녕하세요"),
        ("JP", "ap-northeast-1", "こんにちは"),
        ("BR", "sa-east-1", "Olá"),
        ("DE", "eu-central-1", "Hallo"),
    ],
)
async def test_readme_tour_through_the_router(
    shared_world: RunningWorld, country: str, region: str, greeting: str
) -> None:
    # README: curl --interface $(edgecdn world addr KR) $ROUTER/hello
    assert shared_world.state.router_url is not None
    status, text, headers = await get_from(country, f"{shared_world.state.router_url}/hello")
    assert status == 200, text
    assert greeting in text
    assert f"Your country: {country}" in text
    route = dict(part.strip().split("=", 1) for part in headers["x-edge-route"].split(";"))
    assert route["region"] == region
    assert route["reason"] == "nearest"
    assert float(route["rtt_ms"]) > 0


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("country", "region", "greeting"),
    [
        ("KR", "ap-northeast-2", "안녕하세요"),
        ("JP", "ap-northeast-1", "こんにちは"),
        ("US", "us-east-1", "Hello"),
    ],
)
async def test_readme_component_tour_a_spin_component_greets_through_the_router(
    shared_world: RunningWorld, country: str, region: str, greeting: str
) -> None:
    # README "Run a Spin component": curl --interface $KR $ROUTER/greeting, the geo greeting as
    # a Spin SDK (Python) component, unchanged, on the wasi-http ABI.
    assert shared_world.state.router_url is not None
    status, text, headers = await get_from(country, f"{shared_world.state.router_url}/greeting?from=tour")
    assert status == 200, text
    assert text == f"{greeting} from GET /greeting?from=tour\n"
    fields = {name.lower(): value for name, value in headers.items()}
    assert fields["x-country"] == country  # the component read the edge's cf-ipcountry
    assert fields["content-type"] == "text/plain; charset=utf-8"
    route = dict(part.strip().split("=", 1) for part in headers["x-edge-route"].split(";"))
    assert route["region"] == region


@pytest.mark.asyncio(loop_scope="module")
async def test_readme_call_out_tour_a_component_fetches_through_the_nodes_cache(
    shared_world: RunningWorld,
) -> None:
    # README "Call out": /weather-js, geo-weather's JS twin, calls out the WASI 0.2 way.
    assert shared_world.state.router_url is not None
    status, text, _ = await get_from("KR", f"{shared_world.state.router_url}/weather-js")
    assert status == 200, text
    answer = json.loads(text)
    assert (answer["country"], answer["region"], answer["weather"]["city"]) == (
        "KR",
        "ap-northeast-2",
        "Seoul",
    )
    status, text, _ = await get_from("KR", f"{shared_world.state.router_url}/weather")
    assert (status, json.loads(text)["upstream_cache"]) == (200, "HIT")  # the component's fetch, cached


@pytest.mark.asyncio(loop_scope="module")
async def test_readme_cache_tour_the_worlds_origin_through_the_edge_cache(shared_world: RunningWorld) -> None:
    # README "Cache it": the world's origin behind /shop/..., a MISS then a HIT from Seoul's node.
    assert shared_world.state.router_url is not None
    url = f"{shared_world.state.router_url}/shop/products/42"
    status, text, first = await get_from("KR", url)
    assert (status, first["x-cache"]) == (200, "MISS"), text
    status, text, second = await get_from("KR", url)
    assert (status, second["x-cache"]) == (200, "HIT"), text
    assert second["x-origin-requests"] == first["x-origin-requests"]  # the hit never reached it
    assert json.loads(text)["name"] == "Umbrella"  # no accept-language: English
    assert "ap-northeast-2" in second["x-edge-route"]


@pytest.mark.asyncio(loop_scope="module")
async def test_router_follows_the_control_planes_inventory(shared_world: RunningWorld) -> None:
    assert shared_world.state.router_url is not None
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{shared_world.state.router_url}/_router/status") as response,
    ):
        status = await response.json()
    routed = {node["node_id"]: node for region in status["regions"] for node in region["nodes"]}
    assert set(routed) == {node.node_id for node in shared_world.state.edge_nodes}
    assert all(node["routable"] and node["source"] == "ready" for node in routed.values()), routed


async def edgectl(state_dir: Path, *args: str) -> tuple[int, str, str]:
    """edgectl as an operator runs it next to a world: no flags, world.json found via the state dir."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_plane.edgectl", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO_ROOT,
        env={**os.environ, "EDGECDN_STATE_DIR": str(state_dir)},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.mark.asyncio(loop_scope="module")
async def test_edgectl_finds_the_world_and_every_node_runs_the_app(shared_world: RunningWorld) -> None:
    # No shared node token: each node has its own (in tokens.json), the router its role.
    assert set(shared_world.state.tokens) == {"operator", "viewer", "router", "gateway"}
    code, out, err = await edgectl(shared_world.state_dir, "nodes", "list", "-o", "json")
    assert code == 0, err
    nodes = json.loads(out)
    assert {n["node_id"] for n in nodes} == {n.node_id for n in shared_world.state.edge_nodes}
    for node in nodes:
        assert node["status"] == "ready", node
        assert (node["app"], node["app_version"]) == ("geo-hello", "1.0.0")
        assert node["address"] in {n.url for n in shared_world.state.edge_nodes}


@pytest.mark.asyncio(loop_scope="module")
async def test_world_state_points_at_a_serving_control_plane(shared_world: RunningWorld) -> None:
    data = json.loads((shared_world.state_dir / "world.json").read_text())
    assert data["control_plane"]["address"].startswith("127.0.0.1:")
    assert data["supervisor_pid"] == shared_world.process.pid
    async with grpc.aio.insecure_channel(shared_world.state.control_plane_address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.asyncio(loop_scope="module")
async def test_the_control_planes_metrics_count_every_nodes_session(shared_world: RunningWorld) -> None:
    entry = shared_world.state.process("control-plane")
    assert entry is not None
    url = entry.addresses["metrics"]  # recorded like every process's addresses
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        text = await response.text()
    samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]
    sessions = {s.labels["region"]: s.value for s in samples if s.name == "control_plane_node_sessions"}
    expected: dict[str, float] = {}
    for node in shared_world.state.edge_nodes:
        expected[node.region] = expected.get(node.region, 0) + 1
    assert sessions == expected
    started = {s.labels["method"]: s.value for s in samples if s.name == "control_plane_rpcs_started_total"}
    assert started["/edgecdn.v1.NodeService/WatchNodes"] >= 1  # the router follows the inventory


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_stops_cleanly_within_five_seconds(world: RunningWorld, stop_signal: signal.Signals) -> None:
    pids = world.child_pids
    assert pids, "the world runs at least the control plane"
    started = time.monotonic()
    world.process.send_signal(stop_signal)
    code = await asyncio.wait_for(world.process.wait(), STOP_BUDGET_S)
    assert code == 0
    assert await wait_gone(pids, STOP_BUDGET_S - (time.monotonic() - started)) == []
    assert not (world.state_dir / "world.json").exists(), "a stopped world leaves no stale world.json"


def write_geo_hello_1_1(directory: Path) -> Path:
    """geo-hello 1.1.0: the same module, with a second route ``/hello-v2``."""
    app_dir = directory / "app"
    app_dir.mkdir()
    shutil.copy(REPO_ROOT / "handlers" / "geo-hello" / "geo_hello.wasm", app_dir)
    (app_dir / "app.toml").write_text(
        '[app]\nname = "geo-hello"\nversion = "1.1.0"\n'
        '[[route]]\npath = "/hello"\nmodule = "geo-hello"\n'
        '[[route]]\npath = "/hello-v2"\nmodule = "geo-hello"\n'
        '[module.geo-hello]\nsource = "geo_hello.wasm"\n'
    )
    return app_dir / "app.toml"


async def test_deploy_to_one_region_changes_only_that_region(world: RunningWorld, tmp_path: Path) -> None:
    manifest = write_geo_hello_1_1(tmp_path)
    code, _, err = await edgectl(world.state_dir, "apps", "register", str(manifest))
    assert code == 0, err
    code, _, err = await edgectl(world.state_dir, "deploy", "geo-hello@1.1.0", "--regions", "ap-northeast-2")
    assert code == 0, err

    code, out, _ = await edgectl(world.state_dir, "nodes", "list", "-o", "json")
    versions = {node["region"]: node["app_version"] for node in json.loads(out)}
    assert versions.pop("ap-northeast-2") == "1.1.0"
    assert set(versions.values()) == {"1.0.0"}
    async with aiohttp.ClientSession() as client:
        for node in world.state.edge_nodes:
            async with client.get(f"{node.url}/readyz") as response:
                expected = "1.1.0" if node.region == "ap-northeast-2" else "1.0.0"
                assert (await response.json())["version"] == expected
    # Through the router, as clients see it: only Korea's region has the new route.
    assert world.state.router_url is not None
    status, text, _ = await get_from("KR", f"{world.state.router_url}/hello-v2")
    assert (status, "Your country: KR" in text) == (200, True), text
    for country in ("JP", "DE", "US"):
        status, text, _ = await get_from(country, f"{world.state.router_url}/hello-v2")
        assert status == 404, (country, text)


async def test_killed_supervisor_leaves_no_orphans(world: RunningWorld) -> None:
    pids = world.child_pids
    names = {entry.pid: entry.name for entry in world.state.processes}
    world.process.kill()
    await world.process.wait()
    left = await wait_gone(pids, STOP_BUDGET_S)
    assert [names[pid] for pid in left] == []


@pytest.mark.asyncio(loop_scope="module")
async def test_a_second_world_is_refused(shared_world: RunningWorld) -> None:
    second = await start_world(shared_world.state_dir)
    _, err = await asyncio.wait_for(second.communicate(), 30)
    assert second.returncode == 2
    assert "already running" in err.decode()
    assert shared_world.process.returncode is None, "the first world keeps running"


def run_up(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", "up", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[[regions]\n", "world.toml"),
        ("seed = 'x'\n", "seed"),
    ],
)
def test_bad_world_file_names_the_problem(tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "world.toml"
    bad.write_text(content)
    result = run_up("--world", str(bad), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2
    assert result.stderr.startswith("edgecdn up: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_world_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_up("--world", str(tmp_path / "absent.toml"), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2
    assert "absent.toml" in result.stderr
    assert "Traceback" not in result.stderr


async def node_versions(state_dir: Path) -> dict[str, str]:
    code, out, err = await edgectl(state_dir, "nodes", "list", "-o", "json")
    assert code == 0, err
    return {node["region"]: node["app_version"] for node in json.loads(out)}


@pytest.mark.timeout(3 * 60)  # three whole worlds, one after another (each ~15 s on 2 cores)
async def test_a_restarted_world_keeps_what_the_operator_deployed(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    first = await start_world(state_dir)
    await wait_for_state(first, state_dir)
    assert (await edgectl(state_dir, "apps", "register", str(write_geo_hello_1_1(tmp_path))))[0] == 0
    assert (await edgectl(state_dir, "deploy", "geo-hello@1.1.0", "--regions", "ap-northeast-2"))[0] == 0
    first.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(first.wait(), STOP_BUDGET_S) == 0

    # Started again without --fresh: the control plane's state stands, Seoul keeps 1.1.0.
    second = await start_world(state_dir)
    try:
        state = await wait_for_state(second, state_dir)
        versions = await node_versions(state_dir)
        assert versions.pop("ap-northeast-2") == "1.1.0"
        assert set(versions.values()) == {"1.0.0"}
        # The app the control plane kept names the origin's port: the origin is back on it.
        status, text, _ = await get_from("DE", f"{state.router_url}/shop/products/1")
        assert status == 200, text
    finally:
        second.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(second.communicate(), STOP_BUDGET_S)
    assert "the control plane has apps already" in out.decode()

    third = await start_world(state_dir, "--fresh")
    try:
        await wait_for_state(third, state_dir)
        assert set((await node_versions(state_dir)).values()) == {"1.0.0"}
    finally:
        third.send_signal(signal.SIGTERM)
        await asyncio.wait_for(third.wait(), STOP_BUDGET_S)
