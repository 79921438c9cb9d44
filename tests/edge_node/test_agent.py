"""The edge node under a real control plane: assignments, NACKs, and the last good app on disk."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from geo.world import World
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.conftest import REPO_ROOT
from tests.edge_node.conftest import REGION, WORLD_FILE, client_from, node_url

GEO_HELLO = REPO_ROOT / "handlers" / "geo-hello"


@dataclass(frozen=True, slots=True)
class ControlPlane:
    child: RunningChild
    tokens: dict[str, str]

    @property
    def address(self) -> str:
        return self.child.report.addresses["grpc"]


async def start_control_plane(supervisor: Supervisor, data_dir: Path, name: str = "cp") -> ControlPlane:
    child = await supervisor.start(
        ChildSpec(name=name, argv=(sys.executable, "-m", "control_plane", "--data-dir", str(data_dir)))
    )
    return ControlPlane(child=child, tokens=json.loads((data_dir / "tokens.json").read_text()))


async def edgectl(cp: ControlPlane, *args: str) -> tuple[int, str]:
    flags = ("--server", cp.address, "--token", cp.tokens["operator"])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_plane.edgectl", *flags, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode()


def node_spec(cp: ControlPlane, data_dir: Path, name: str = "node") -> ChildSpec:
    return ChildSpec(
        name=name,
        argv=(
            sys.executable, "-m", "edge_node", "--region", REGION, "--world", str(WORLD_FILE),
            "--data-dir", str(data_dir), "--control-plane", cp.address, "--token", cp.tokens["node"],
        ),
    )  # fmt: skip


async def wait_for_app(node: RunningChild, version: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            async with client.get(f"{node_url(node)}/readyz") as response:
                if response.status == 200 and (await response.json())["version"] == version:
                    return
            await asyncio.sleep(0.1)
    pytest.fail(f"node never served version {version}")


async def serving_geo_hello(supervisor: Supervisor, tmp_path: Path) -> tuple[ControlPlane, RunningChild]:
    """A control plane and one node following it, serving geo-hello 1.0.0."""
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    node = await supervisor.start(node_spec(cp, tmp_path / "node"))
    assert (await edgectl(cp, "apps", "register", str(GEO_HELLO / "app.toml")))[0] == 0
    assert (await edgectl(cp, "deploy", "geo-hello@1.0.0", "--all"))[0] == 0
    await wait_for_app(node, "1.0.0")
    return cp, node


async def greeting(node: RunningChild, world: World, country: str) -> str:
    async with client_from(world, country) as client, client.get(f"{node_url(node)}/hello") as response:
        assert response.status == 200
        return await response.text()


def manifest_with(tmp_path: Path, *, version: str, memory: str) -> Path:
    """geo-hello's manifest at another version and memory cap, sources next to it."""
    app = tmp_path / f"app-{version}"
    app.mkdir()
    shutil.copy(GEO_HELLO / "geo_hello.wasm", app / "geo_hello.wasm")
    (app / "app.toml").write_text(
        f'[app]\nname = "geo-hello"\nversion = "{version}"\n'
        '[[route]]\npath = "/hello"\nmodule = "geo-hello"\n'
        f'[module.geo-hello]\nsource = "geo_hello.wasm"\nmemory = "{memory}"\n'
    )
    return app / "app.toml"


async def test_node_serves_what_it_is_assigned(supervisor: Supervisor, tmp_path: Path, world: World) -> None:
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    node = await supervisor.start(node_spec(cp, tmp_path / "node"))
    async with aiohttp.ClientSession() as client, client.get(f"{node_url(node)}/readyz") as response:
        assert response.status == 503, "nothing assigned yet"

    code, output = await edgectl(cp, "apps", "register", str(GEO_HELLO / "app.toml"))
    assert code == 0, output
    code, output = await edgectl(cp, "deploy", "geo-hello@1.0.0", "--all")
    assert code == 0, output
    await wait_for_app(node, "1.0.0")
    assert "안녕하세요" in await greeting(node, world, "KR")
    code, output = await edgectl(cp, "nodes", "list", "-o", "json")
    (listed,) = json.loads(output)
    assert listed["node_id"] == f"{REGION}-a"
    assert listed["app_version"] == "1.0.0"
    assert listed["address"] == node_url(node)


async def test_refused_assignment_keeps_the_running_app(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    node = await supervisor.start(node_spec(cp, tmp_path / "node"))
    good = manifest_with(tmp_path, version="1.0.0", memory="16MiB")
    code, output = await edgectl(cp, "apps", "register", str(good))
    assert code == 0, output
    assert (await edgectl(cp, "deploy", "geo-hello@1.0.0", "--all"))[0] == 0
    await wait_for_app(node, "1.0.0")

    # Larger than any memory slot the node's engine has: the manifest rules (edgectl's and
    # the control plane's) refuse it before any node is asked, so no node ever NACKs it.
    greedy = manifest_with(tmp_path, version="2.0.0", memory="1GiB")
    code, output = await edgectl(cp, "apps", "register", str(greedy))
    assert code != 0
    assert "module.geo-hello.memory" in output
    code, output = await edgectl(cp, "deploy", "geo-hello@2.0.0", "--all")
    assert code != 0
    code, output = await edgectl(cp, "nodes", "list", "-o", "json")
    (listed,) = json.loads(output)
    assert listed["app_version"] == "1.0.0"
    assert "こんにちは" in await greeting(node, world, "JP")


async def test_restarted_node_serves_its_last_good_app_without_the_control_plane(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp, _ = await serving_geo_hello(supervisor, tmp_path)
    await supervisor.stop_all()  # the node and the control plane are gone

    restarted = await supervisor.start(node_spec(cp, tmp_path / "node", name="restarted"))
    await wait_for_app(restarted, "1.0.0", timeout_s=5)
    assert "Hallo" in await greeting(restarted, world, "DE")


async def test_running_node_keeps_serving_when_the_control_plane_is_killed(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp, node = await serving_geo_hello(supervisor, tmp_path)
    cp.child.process.kill()  # SIGKILL: no goodbye on the session stream
    await cp.child.process.wait()
    for _ in range(10):  # while the agent notices and reconnects with back-off
        assert "안녕하세요" in await greeting(node, world, "KR")
        await asyncio.sleep(0.1)
    assert node.process.returncode is None

    # And a restart with the control plane still dead serves the last good app from disk.
    node.process.kill()
    await node.process.wait()
    restarted = await supervisor.start(node_spec(cp, tmp_path / "node", name="restarted"))
    await wait_for_app(restarted, "1.0.0", timeout_s=5)
    assert "Hallo" in await greeting(restarted, world, "DE")


async def test_heartbeats_carry_the_nodes_load_to_the_control_plane(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp, node = await serving_geo_hello(supervisor, tmp_path)
    deadline = time.monotonic() + 15
    async with client_from(world, "KR") as client:
        while True:
            for _ in range(20):  # keep the node busy across heartbeats
                async with client.get(f"{node_url(node)}/hello") as response:
                    assert response.status == 200
            code, output = await edgectl(cp, "nodes", "list", "-o", "json")
            assert code == 0, output
            (listed,) = json.loads(output)
            if listed["requests_per_second"] > 0:
                break
            assert time.monotonic() < deadline, f"no load reached the control plane: {listed}"
    assert listed["in_flight"] >= 0
    assert listed["errors_per_second"] == 0
