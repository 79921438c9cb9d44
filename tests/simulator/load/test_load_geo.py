"""Every simulated country, through a real edge node, is seen as itself.

The edge node serves the geo-hello app (the real wasm handler every world serves); its
JSON answer names the country the edge located the client in. The load generator checks
each answer against its own client's country (``expect_body``), so a single misplaced
request would show up as a ``check`` error of that country.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest_asyncio

from geo.world import World
from simulator.load.client import RequestSpec
from simulator.load.engine import Engine, EngineConfig
from simulator.load.plan import Phase, Plan, equal_mix
from simulator.supervisor import ChildSpec, Supervisor
from tests.conftest import REPO_ROOT
from tests.simulator.load.conftest import WORLD_FILE

REGION = "eu-central-1"
GEO_HELLO = REPO_ROOT / "handlers" / "geo-hello" / "app.toml"


@pytest_asyncio.fixture
async def edge_url(tmp_path: Path) -> AsyncIterator[str]:
    spec = ChildSpec(
        name="edge-node",
        argv=(
            sys.executable, "-m", "edge_node", "--app", str(GEO_HELLO), "--region", REGION,
            "--world", str(WORLD_FILE), "--data-dir", str(tmp_path / "data"), "--port", "0",
        ),
    )  # fmt: skip
    async with Supervisor(tmp_path / "run") as supervisor:
        node = await supervisor.start(spec)
        yield node.report.addresses["http"]


async def test_every_country_is_located_as_itself(edge_url: str, world: World) -> None:
    codes = tuple(c.code for c in world.countries)
    mix = equal_mix(codes)
    parts = urlsplit(edge_url)
    config = EngineConfig(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 80,
        host_header=parts.netloc,
        request=RequestSpec(path="/hello", headers=(("Accept", "application/json"),)),
        plan=Plan(
            phases=(Phase(name="geo", kind="steady", duration_s=1.0, mix=mix, rate_start=6.0 * len(codes)),)
        ),
        addresses={c.code: (c.client_address(1), c.client_address(2)) for c in world.countries},
        connections=2 * len(codes),
        expect_body='"country":"{country}"',
    )
    recorder = await Engine(config, stop=asyncio.Event()).run()
    for code in codes:
        stats = recorder.countries[code]
        assert stats.requests == 6, code
        assert not stats.errors, (code, dict(stats.errors))
        assert dict(stats.served_by) == {REGION: 6}
