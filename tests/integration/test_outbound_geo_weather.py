"""handlers/geo-weather end to end: the committed module in a real edge node, fetching the
world's real origin (simulator.world_origin) through ``self`` and the node's cache, answering
clients per country; and the world's app gaining it (``simulator.world_app.with_examples``)."""

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
from tests.conftest import REPO_ROOT
from tests.edge_node.conftest import REGION, WORLD_FILE, client_from, edge_node_spec

GEO_WEATHER = REPO_ROOT / "handlers" / "geo-weather"


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
        manifest = (GEO_WEATHER / "app.toml").read_text()
        manifest = manifest.replace("http://127.0.0.1:8090", origin.report.addresses["http"])
        (tmp_path / "geo_weather.wasm").write_bytes((GEO_WEATHER / "geo_weather.wasm").read_bytes())
        app = tmp_path / "app.toml"
        app.write_text(manifest)
        edge = await supervisor.start(edge_node_spec(app, tmp_path / "data"))
        yield Running(url=edge.report.addresses["http"], world=load_world(WORLD_FILE))


async def _weather(running: Running, country: str) -> tuple[int, dict[str, object]]:
    async with (
        client_from(running.world, country) as client,
        client.get(running.url + "/weather") as response,
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


def test_the_world_app_gains_the_example_unless_taken() -> None:
    base = load_manifest(REPO_ROOT / "handlers" / "geo-hello" / "app.toml")
    merged = with_examples(base, WORLD_EXAMPLES)
    weather_route = merged.match("/weather")
    assert weather_route is not None
    assert weather_route.module == "geo-weather"
    assert merged.modules["geo-weather"].allowed_outbound_hosts == ("http://self",)
    # The example's own /shop/... stands for the world's: the world adds that one itself.
    assert all(route.path != "/shop/..." for route in merged.routes)
    # Adding it twice changes nothing: the path and module are taken.
    assert with_examples(merged, WORLD_EXAMPLES).routes == merged.routes
