"""Fixtures of the geo tests: small world files written to a temporary directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from geo.world import World, load_world

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"

# A small world with the features the big one leaves out: real (documentation) networks,
# IPv6, and a registered country that differs from the represented one.
SMALL_WORLD = """
seed = 7

[latency]
fiber_km_per_ms = 200.0
path_inflation = 1.5
per_hop_base_ms = 4.0
jitter_ms = 2.0

[[regions]]
id = "ap-northeast-2"
pop = "Seoul"
latitude = 37.57
longitude = 126.98
serves = ["KR"]

[[regions]]
id = "eu-central-1"
pop = "Frankfurt"
latitude = 50.11
longitude = 8.68
edge_nodes = 2
gateways = 0
serves = ["DE"]

[[regions]]
id = "us-east-1"
pop = "Ashburn"
latitude = 39.04
longitude = -77.49

[[countries]]
code = "KR"
name = "South Korea"
continent = "AS"
city = "Seoul"
latitude = 36.9
longitude = 127.3
loopback = "127.10.0.0/16"
cidrs = ["192.0.2.0/24", "2001:db8:1::/48"]

[[countries]]
code = "DE"
name = "Germany"
continent = "EU"
city = "Berlin"
latitude = 50.9
longitude = 9.8
loopback = "127.20.0.0/16"
cidrs = ["198.51.100.0/24"]
registered_country = "NL"

[[countries]]
code = "BR"
name = "Brazil"
continent = "SA"
city = "São Paulo"
latitude = -16.5
longitude = -46.0
loopback = "127.30.0.0/16"
"""

WorldWriter = Callable[[str], Path]


@pytest.fixture
def write_world(tmp_path: Path) -> WorldWriter:
    """Write world text to a fresh file and return its path."""
    counter = iter(range(1_000_000))

    def write(text: str) -> Path:
        path = tmp_path / f"world-{next(counter)}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def small_world(write_world: WorldWriter) -> World:
    return load_world(write_world(SMALL_WORLD))


@pytest.fixture(scope="session")
def default_world() -> World:
    return load_world(DEFAULT_WORLD)


def write_mmdb(
    path: Path,
    *,
    database_type: str,
    records: list[tuple[str, dict[str, Any]]],
    ip_version: int = 6,
) -> Path:
    """Write a MaxMind DB of ``records`` (network, record): a stand-in for a real GeoIP2 file."""
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type=database_type,
        languages=["en"],
        description={"en": f"test {database_type}"},
    )
    for network, record in records:
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


def city_record(code: str, name: str, continent: str, city: str, lat: float, lon: float) -> dict[str, Any]:
    """A record in the GeoIP2 City layout, as MaxMind writes it."""
    return {
        "continent": {"code": continent, "names": {"en": continent}},
        "country": {"iso_code": code, "names": {"en": name}},
        "registered_country": {"iso_code": code, "names": {"en": name}},
        "city": {"names": {"en": city}},
        "location": {"latitude": lat, "longitude": lon, "accuracy_radius": 50},
    }
