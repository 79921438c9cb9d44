"""handlers/geo-weather end to end: the committed module in a real edge node, fetching the
world's real origin (simulator.world_origin) through ``self`` and the node's cache, answering
clients per country; its JavaScript twin, a component calling out through
``wasi:http/outgoing-handler``, beside it on the same cache; and the world's app gaining both
(``simulator.world_app.with_examples``)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from geo.world import World, load_world
from manifest import load_manifest
from simulator import world_origin
from simulator.supervisor import ChildSpec, Supervisor
from simulator.world_app import WORLD_EXAMPLES, with_examples
from tests.conftest import REPO_ROOT, TEST_MODULE_CACHE
from tests.edge_node.conftest import REGION, WORLD_FILE, client_from, edge_node_spec

GEO_WEATHER = REPO_ROOT / "handlers" / "geo-weather"
GEO_WEATHER_JS = REPO_ROOT / "handlers" / "components" / "geo-weather-js"


@dataclass
class Running:
    url: str
    world: World


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Running]:
    async with Supervisor(tmp_path / "run") as supervisor:
        origin = await supervisor.start(
            ChildSpec(name="origin", argv=(sys.executable, "-m", "simulator.world_origin", "--port", "0"))
        )
        # One app: geo-weather's manifest with the component's /weather-js route and its
        # [component] table spliced in (the component's own /shop/... is geo-weather's too).
        manifest = (GEO_WEATHER / "app.toml").read_text()
        component = (GEO_WEATHER_JS / "app.toml").read_text()
        routes, _, spec = component.partition('[[route]]\npath = "/shop/..."')
        routes = routes[routes.index("[[route]]") :]
        spec = spec[spec.index("[component.") :]
        manifest = manifest.replace("[module.geo-weather]", f"{routes}{spec}\n[module.geo-weather]")
        manifest = manifest.replace("http://127.0.0.1:8090", origin.report.addresses["http"])
        (tmp_path / "geo_weather.wasm").write_bytes((GEO_WEATHER / "geo_weather.wasm").read_bytes())
        (tmp_path / "geo_weather_js.wasm").write_bytes((GEO_WEATHER_JS / "geo_weather_js.wasm").read_bytes())
        app = tmp_path / "app.toml"
        app.write_text(manifest)
        edge = await supervisor.start(
            edge_node_spec(app, tmp_path / "data", "--module-cache-dir", str(TEST_MODULE_CACHE))
        )
        yield Running(url=edge.report.addresses["http"], world=load_world(WORLD_FILE))


async def _weather(running: Running, country: str, path: str = "/weather") -> tuple[int, dict[str, object]]:
    async with (
        client_from(running.world, country) as client,
        client.get(running.url + path) as response,
    ):
        return response.status, json.loads(await response.read())


async def test_each_country_gets_its_weather_fetched_once_then_from_the_cache(node: Running) -> None:
    status, first = await _weather(node, "KR")
    assert status == 200
    assert first["country"] == "KR"
    assert first["region"] == REGION
    assert first["upstream_cache"] == "MISS"
    weather = first["weather"]
    assert isinstance(weather, dict)
    today = world_origin.weather_of("KR", 0)
    assert (weather["country"], weather["city"]) == (today["country"], today["city"])
    status, again = await _weather(node, "KR")
    assert (status, again["upstream_cache"], again["weather"]) == (200, "HIT", weather)
    status, japan = await _weather(node, "JP")
    assert (status, japan["country"], japan["upstream_cache"]) == (200, "JP", "MISS")


async def test_the_component_twin_calls_out_through_the_same_cache(node: Running) -> None:
    status, first = await _weather(node, "KR", "/weather-js")
    assert status == 200, first
    assert (first["country"], first["region"], first["upstream_cache"]) == ("KR", REGION, "MISS")
    # The C module asks for the same URL: the component's fetch left it in the node's cache.
    status, module = await _weather(node, "KR")
    assert (status, module["upstream_cache"], module["weather"]) == (200, "HIT", first["weather"])
    status, japan = await _weather(node, "JP", "/weather-js")
    assert (status, japan["country"], japan["upstream_cache"]) == (200, "JP", "MISS")


def test_the_world_app_gains_the_example_unless_taken() -> None:
    base = load_manifest(REPO_ROOT / "handlers" / "geo-hello" / "app.toml")
    merged = with_examples(base, WORLD_EXAMPLES)
    weather_route = merged.match("/weather")
    assert weather_route is not None
    assert weather_route.module == "geo-weather"
    assert merged.modules["geo-weather"].allowed_outbound_hosts == ("http://self",)
    component = merged.modules["geo-weather-js"]
    assert (component.abi, component.allowed_outbound_hosts) == ("wasi-http", ("http://self",))
    assert merged.modules["geo-greeting"].abi == "wasi-http"
    # The example's own /shop/... stands for the world's: the world adds that one itself.
    assert all(route.path != "/shop/..." for route in merged.routes)
    # Adding it twice changes nothing: the path and module are taken.
    assert with_examples(merged, WORLD_EXAMPLES).routes == merged.routes
