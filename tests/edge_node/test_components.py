"""An edge node serving Spin SDK components (the wasi-http ABI) beside each other: the geo
greeting in the client's language, a streamed body, and the test kit's trap and loop
answered as the other ABIs' are, without stalling the node's other routes."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from geo.world import World
from simulator.supervisor import RunningChild, Supervisor
from tests.conftest import REPO_ROOT, TEST_MODULE_CACHE
from tests.edge_node.conftest import client_from, edge_node_spec, node_url

pytestmark = pytest.mark.asyncio(loop_scope="module")

COMPONENTS = REPO_ROOT / "handlers" / "components"
LOOP_TIMEOUT_S = 1.5

APP = f"""
[app]
name = "components"
version = "1.0.0"

[[route]]
path = "/greeting"
component = "geo-greeting"

[[route]]
path = "/trap"
component = "kit"

[[route]]
path = "/loop"
component = "kit"

[[route]]
path = "/stream"
component = "kit"

[component.geo-greeting]
source = "geo_greeting.wasm"
memory = "32MiB"
timeout = "1s"

[component.kit]
source = "misbehave.wasm"
memory = "64MiB"
timeout = "{LOOP_TIMEOUT_S}s"
max_output = "4MiB"
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningChild]:
    base = tmp_path_factory.mktemp("components")
    app = base / "app"
    app.mkdir()
    shutil.copy(COMPONENTS / "geo-greeting" / "geo_greeting.wasm", app)
    shutil.copy(COMPONENTS / "misbehave" / "misbehave.wasm", app)
    (app / "app.toml").write_text(APP)
    # Compiled once for the whole test run (two 37 MB components), as nodes of one machine share.
    shared = ("--module-cache-dir", str(TEST_MODULE_CACHE))
    async with Supervisor(base / "run") as supervisor:
        yield await supervisor.start(edge_node_spec(app / "app.toml", base / "data", *shared))


async def get(world: World, country: str, url: str) -> tuple[int, bytes, dict[str, str]]:
    async with client_from(world, country) as client, client.get(url) as answer:
        return answer.status, await answer.read(), {k.lower(): v for k, v in answer.headers.items()}


@pytest.mark.parametrize(
    ("country", "greeting"), [("KR", "안녕하세요"), ("JP", "こんにちは"), ("DE", "Hello")]
)
async def test_the_spin_greeting_answers_in_the_clients_language(
    node: RunningChild, world: World, country: str, greeting: str
) -> None:
    status, body, headers = await get(world, country, f"{node_url(node)}/greeting?q=1")
    assert status == 200
    assert body.decode() == f"{greeting} from GET /greeting?q=1\n"
    assert headers["x-country"] == country
    assert headers["x-edge-app"] == "components@1.0.0"


async def test_a_streamed_body_arrives_whole(node: RunningChild, world: World) -> None:
    status, body, _ = await get(world, "KR", f"{node_url(node)}/stream?size=3000000")
    assert status == 200
    assert len(body) == 3_000_000


async def test_a_trap_is_a_500_as_under_the_other_abis(node: RunningChild, world: World) -> None:
    status, body, _ = await get(world, "KR", f"{node_url(node)}/trap")
    assert status == 500
    assert json.loads(body)["error"] == "handler_trap"


async def test_a_loop_is_a_504_at_its_deadline_and_the_node_answers_meanwhile(
    node: RunningChild, world: World
) -> None:
    looping = asyncio.create_task(get(world, "KR", f"{node_url(node)}/loop"))
    greetings = 0
    while not looping.done():  # the greeting keeps answering while the loop runs
        status, _, _ = await get(world, "JP", f"{node_url(node)}/greeting")
        assert status == 200
        greetings += 1
    status, body, _ = await looping
    assert status == 504, body
    assert greetings >= 3


async def test_the_node_says_which_abi_each_module_runs(node: RunningChild) -> None:
    async with aiohttp.ClientSession() as client, client.get(f"{node_url(node)}/_edge/info") as answer:
        info = await answer.json()
    modules = {module["name"]: module["abi"] for module in info["modules"]}
    assert modules == {"geo-greeting": "wasi-http", "kit": "wasi-http"}
