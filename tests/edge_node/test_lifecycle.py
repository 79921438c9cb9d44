"""Edge node start-up and restart: trusted proxies, bad manifests, the AOT compile cache."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from geo.world import World
from simulator.errors import ChildFailedError
from simulator.supervisor import Supervisor
from tests.edge_node.conftest import WORLD_FILE, client_from, edge_node_spec, node_url, write_test_app


def module_cache_count(metrics: str, origin: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'edge_module_cache_total{{result="{origin}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def fetch_metrics(url: str) -> str:
    async with aiohttp.ClientSession() as client, client.get(f"{url}/metrics") as response:
        return await response.text()


async def test_restart_loads_modules_from_the_aot_cache(supervisor: Supervisor, tmp_path: Path) -> None:
    app = write_test_app(tmp_path / "app")
    first = await supervisor.start(edge_node_spec(app, tmp_path / "data", name="first"))
    metrics = await fetch_metrics(node_url(first))
    assert module_cache_count(metrics, "compiled") > 0
    assert module_cache_count(metrics, "disk") == 0
    await supervisor.stop_all()

    second = await supervisor.start(edge_node_spec(app, tmp_path / "data", name="second"))
    metrics = await fetch_metrics(node_url(second))
    assert module_cache_count(metrics, "compiled") == 0, "an unchanged module is never compiled twice"
    assert module_cache_count(metrics, "disk") > 0


async def test_trusted_proxy_may_name_the_client(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    app = write_test_app(tmp_path / "app")
    node = await supervisor.start(edge_node_spec(app, tmp_path / "data", "--trusted-proxy", "127.0.0.1/32"))
    korean_client = world.country("KR").client_address()
    async with (
        aiohttp.ClientSession() as proxy,  # connects from 127.0.0.1, like the router
        # Spelled as nginx sends it: field names are case-insensitive.
        proxy.get(f"{node_url(node)}/m/env", headers={"X-Forwarded-For": korean_client}) as response,
    ):
        body = await response.text()
    assert "HTTP_CF_IPCOUNTRY=KR" in body
    assert f"REMOTE_ADDR={korean_client}" in body
    # A client that is not the trusted proxy still cannot do the same.
    async with (
        client_from(world, "US") as client,
        client.get(f"{node_url(node)}/m/env", headers={"x-forwarded-for": korean_client}) as response,
    ):
        assert "HTTP_CF_IPCOUNTRY=US" in await response.text()


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ('[app]\nname = "x"\nversion = "1"\n[[route]]\npath = "/a"\nmodule = "missing"\n', "missing"),
        ('[app]\nname = "x"\n', "version"),
        ("not toml [", "app.toml"),
    ],
)
async def test_bad_manifest_fails_at_start_with_a_clear_message(
    supervisor: Supervisor, tmp_path: Path, manifest: str, expected: str
) -> None:
    app = tmp_path / "app.toml"
    app.write_text(manifest)
    with pytest.raises(ChildFailedError) as failure:
        await supervisor.start(edge_node_spec(app, tmp_path / "data"))
    assert "edge-node: " in failure.value.log_tail
    assert expected in failure.value.log_tail
    assert "Traceback" not in failure.value.log_tail


async def test_module_that_is_not_wasm_fails_at_start(supervisor: Supervisor, tmp_path: Path) -> None:
    (tmp_path / "bad.wasm").write_bytes(b"\x00asm but not really")
    app = tmp_path / "app.toml"
    app.write_text('[app]\nname = "x"\nversion = "1"\n[[route]]\npath = "/a"\nmodule = "bad"\n'
                   '[module.bad]\nsource = "bad.wasm"\n')  # fmt: skip
    with pytest.raises(ChildFailedError) as failure:
        await supervisor.start(edge_node_spec(app, tmp_path / "data"))
    assert "module bad" in failure.value.log_tail
    assert "Traceback" not in failure.value.log_tail


async def test_unknown_region_is_refused(tmp_path: Path) -> None:
    app = write_test_app(tmp_path / "app")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_node", "--app", str(app), "--region", "mars-1",
        "--world", str(WORLD_FILE), "--data-dir", str(tmp_path / "data"), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "mars-1" in stderr.decode()
    assert "Traceback" not in stderr.decode()
