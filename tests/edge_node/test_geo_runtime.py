"""An edge node's geo database at run time (issue 24, finding 7), against a real node.

Before: a damaged record made every request on its address a 500, and a database truncated
in place killed the node with SIGBUS and no log line. Now a bad record is an unknown
location (counted in /metrics), truncation changes nothing, and a replaced file is taken up.
Clients are placed with X-Forwarded-For from a trusted 127.0.0.1, at addresses the world's
own database does not hold, so the extra ``--geo-db`` answers.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import maxminddb

from simulator.supervisor import RunningChild, Supervisor
from tests.edge_node.conftest import edge_node_spec, node_url, write_test_app
from tests.geo.conftest import city_record, write_mmdb

TOWNS = 3000


def _towns(path: Path, name: str = "Town") -> Path:
    """A GeoLite2-City stand-in of many pages: 10.a.b.0/24 is "{name} {256a+b}"."""
    records = [
        (f"10.{i // 256}.{i % 256}.0/24", city_record("US", "USA", "NA", f"{name} {i}", 40.0, -i / 100))
        for i in range(TOWNS)
    ]
    return write_mmdb(path, database_type="GeoLite2-City", records=records)


def _address(town: int) -> str:
    return f"10.{town // 256}.{town % 256}.9"


async def _start(supervisor: Supervisor, base: Path, geo_db: Path) -> RunningChild:
    app = write_test_app(base / "app")
    spec = edge_node_spec(
        app, base / "data", "--trusted-proxy", "127.0.0.1/32", "--geo-db", str(geo_db), name="geo-node"
    )
    return await supervisor.start(spec)


async def _geo_of(node: RunningChild, town: int) -> tuple[int, str, str]:
    """Status, country and city the node's handler saw for a client at ``town``'s address."""
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{node_url(node)}/m/env", headers={"x-forwarded-for": _address(town)}) as response,
    ):
        body = await response.text()
    env = dict(item.split("=", 1) for item in body.split("\n--stdin--\n", 1)[0].split("\x00") if "=" in item)
    return response.status, env.get("HTTP_CF_IPCOUNTRY", ""), env.get("HTTP_X_GEO_CITY", "")


async def _metrics(node: RunningChild) -> str:
    async with aiohttp.ClientSession() as client, client.get(f"{node_url(node)}/metrics") as response:
        return await response.text()


async def test_a_damaged_record_is_answered_as_an_unknown_location_and_counted(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    path = _towns(tmp_path / "GeoLite2-City.mmdb")
    data = path.read_bytes()
    with maxminddb.open_database(path, maxminddb.MODE_MEMORY) as reader:
        start = reader.metadata().search_tree_size + 16
    end = data.rindex(b"\xab\xcd\xefMaxMind.com")
    path.write_bytes(data[:start] + b"\xff" * (end - start) + data[end:])  # every record damaged
    node = await _start(supervisor, tmp_path, path)
    for town in (1, 2, 2999):
        assert await _geo_of(node, town) == (200, "XX", "")
    text = await _metrics(node)
    assert f'edge_geo_bad_records_total{{database="{path}"}} 3.0' in text


async def test_truncating_the_database_in_place_does_not_kill_the_node(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    path = _towns(tmp_path / "GeoLite2-City.mmdb")
    node = await _start(supervisor, tmp_path, path)
    assert await _geo_of(node, 1) == (200, "US", "Town 1")
    with path.open("r+b") as file:  # half, on a page boundary: the records are past the end
        file.truncate(path.stat().st_size // 2 // 4096 * 4096)
    for town in (TOWNS - 1, 1500, 7):  # a mapped file faults on these
        assert await _geo_of(node, town) == (200, "US", f"Town {town}")
    deadline = time.monotonic() + 15
    # A lookup after the check interval notices the change and refuses the truncated file.
    while f'edge_geo_reloads_total{{database="{path}",result="failed"}} 1.0' not in await _metrics(node):
        assert time.monotonic() < deadline, "the truncated file was never noticed"
        assert (await _geo_of(node, 42))[0] == 200
        await asyncio.sleep(0.2)
    assert node.process.returncode is None
    assert await _geo_of(node, 2998) == (200, "US", "Town 2998")


async def test_an_atomically_replaced_database_is_taken_up(supervisor: Supervisor, tmp_path: Path) -> None:
    path = _towns(tmp_path / "GeoLite2-City.mmdb")
    node = await _start(supervisor, tmp_path, path)
    assert await _geo_of(node, 1) == (200, "US", "Town 1")
    os.replace(_towns(tmp_path / "next.mmdb", name="Village"), path)
    deadline = time.monotonic() + 15
    while (await _geo_of(node, 1))[2] != "Village 1":  # the cached answer goes with the old file
        assert time.monotonic() < deadline, "the replaced file was never taken up"
        await asyncio.sleep(0.2)
    assert await _geo_of(node, 2999) == (200, "US", "Village 2999")
    assert f'edge_geo_reloads_total{{database="{path}",result="ok"}} 1.0' in await _metrics(node)
