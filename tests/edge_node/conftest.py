"""An edge node serving a test app made of real wasm modules, and clients from any country.

Clients bind their socket to an address in their country's loopback block (exactly what
`edgecdn world addr CC` prints), so the node geolocates them by their real source address.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import wasmtime

from geo.world import World, load_world
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.conftest import REPO_ROOT
from tests.wasm_host import wat

WORLD_FILE = REPO_ROOT / "deploy" / "local" / "world.toml"
REGION = "ap-northeast-2"

# name -> (WAT source, extra manifest keys)
TEST_MODULES: dict[str, tuple[str, str]] = {
    "env": (wat.WAGI_ENV_AND_STDIN, ""),
    "loop": (wat.WAGI_INFINITE_LOOP, 'timeout = "50ms"'),
    "hog": (wat.WAGI_MEMORY_HOG, 'memory = "1MiB"'),
    "trap": (wat.WAGI_UNREACHABLE, ""),
    "flood": (wat.wagi_flood(40), ""),
    "garbage": (wat.wagi_print(b"this is not a CGI response"), ""),
    "claims": (
        wat.wagi_print(
            b"content-type: text/plain\ndate: Mon, 01 Jan 2001 00:00:00 GMT\n"
            b"x-edge-node: impostor\nx-edge-app: forged@0.0.0\nx-handler: kept\n\nhi"
        ),
        "",
    ),
}


def write_test_app(directory: Path) -> Path:
    """An app routing /m/NAME to each test module (and /m/env/... by prefix)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ['[app]\nname = "edge-test"\nversion = "1.2.3"\n']
    for name, (source, extra) in TEST_MODULES.items():
        (directory / f"{name}.wasm").write_bytes(wasmtime.wat2wasm(source))
        lines.append(f'[[route]]\npath = "/m/{name}"\nmodule = "{name}"\n')
        lines.append(f'[module.{name}]\nsource = "{name}.wasm"\n{extra}\n')
    lines.append('[[route]]\npath = "/prefix/..."\nmodule = "env"\n')
    manifest = directory / "app.toml"
    manifest.write_text("\n".join(lines))
    return manifest


def edge_node_spec(app: Path, data_dir: Path, *extra: str, name: str = "edge-node") -> ChildSpec:
    return ChildSpec(
        name=name,
        argv=(
            sys.executable, "-m", "edge_node", "--app", str(app), "--region", REGION,
            "--world", str(WORLD_FILE), "--data-dir", str(data_dir), "--port", "0", *extra,
        ),
    )  # fmt: skip


@pytest.fixture(scope="module")
def world() -> World:
    return load_world(WORLD_FILE)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge_node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningChild]:
    base = tmp_path_factory.mktemp("edge")
    app = write_test_app(base / "app")
    async with Supervisor(base / "run") as supervisor:
        yield await supervisor.start(edge_node_spec(app, base / "data", "--max-body-bytes", "65536"))


def client_from(world: World, country: str) -> aiohttp.ClientSession:
    """An HTTP client whose connections leave from ``country``'s loopback block."""
    address = world.country(country).client_address()
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=True))


def node_url(node: RunningChild) -> str:
    return node.report.addresses["http"]
