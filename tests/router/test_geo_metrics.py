"""The router's geo databases in /metrics, as the edge node's are (issue 24, finding 7's
counters): a lookup that met an unreadable record (``router_geo_bad_records_total``), and a
database file replaced on disk and taken up (``router_geo_reloads_total``). The router is
asked to place addresses only the extra ``--geo-db`` holds, through /_router/resolve.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import maxminddb

from simulator.supervisor import RunningChild, Supervisor
from tests.geo.conftest import city_record, write_mmdb
from tests.router.conftest import free_port, get_json, router_spec, url_of

TOWNS = 512


def _towns(path: Path, name: str) -> Path:
    """A GeoLite2-City stand-in: 10.0.a.0/24 is "{name} {a}", 10.1.a.0/24 "{name} {256+a}"."""
    records = [
        (f"10.{i // 256}.{i % 256}.0/24", city_record("US", "USA", "NA", f"{name} {i}", 40.0, -i / 100))
        for i in range(TOWNS)
    ]
    return write_mmdb(path, database_type="GeoLite2-City", records=records)


async def _city(router: RunningChild, town: int) -> str:
    answer = await get_json(f"{url_of(router)}/_router/resolve?ip=10.{town // 256}.{town % 256}.9")
    city: str = (answer.get("location") or {}).get("city") or ""
    return city


async def _metrics(router: RunningChild) -> str:
    async with aiohttp.ClientSession() as client, client.get(f"{url_of(router)}/metrics") as response:
        return await response.text()


async def test_bad_records_and_reloads_are_counted_in_the_routers_metrics(
    supervisor: Supervisor, geo_cache_dir: Path, tmp_path: Path
) -> None:
    path = _towns(tmp_path / "GeoLite2-City.mmdb", "Town")
    data = path.read_bytes()
    with maxminddb.open_database(path, maxminddb.MODE_MEMORY) as reader:
        start = reader.metadata().search_tree_size + 16
    end = data.rindex(b"\xab\xcd\xefMaxMind.com")
    path.write_bytes(data[:start] + b"\xff" * (end - start) + data[end:])  # every record damaged
    nowhere = f"http://127.0.0.1:{free_port()}"  # the router needs a node; none is asked
    router = await supervisor.start(
        router_spec(geo_cache_dir, "--wan", "off", "--geo-db", str(path), "--edge", f"us-east-1={nowhere}")
    )
    for town in (1, 2, 300):
        assert await _city(router, town) == ""  # placed nowhere, and still answered
    assert f'router_geo_bad_records_total{{database="{path}"}} 3.0' in await _metrics(router)

    os.replace(_towns(tmp_path / "next.mmdb", "Village"), path)
    deadline = time.monotonic() + 15
    while await _city(router, 1) != "Village 1":  # a lookup after the check interval takes it up
        assert time.monotonic() < deadline, "the replaced file was never taken up"
        await asyncio.sleep(0.2)
    assert f'router_geo_reloads_total{{database="{path}",result="ok"}} 1.0' in await _metrics(router)
