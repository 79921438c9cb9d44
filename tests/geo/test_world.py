"""The world model: the default world's shape, and clear errors for bad world files."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import pytest

from geo.errors import (
    GeoError,
    InvalidValueError,
    UnknownCountryError,
    UnknownRegionError,
    WorldFileError,
)
from geo.world import Country, Region, World, load_world
from tests.geo.conftest import DEFAULT_WORLD, SMALL_WORLD, WorldWriter

REQUIRED_COUNTRIES = {"KR", "JP", "US", "DE", "FR", "GB", "BR", "IN", "AU", "ZA", "CN"}
# AWS region id prefixes name the continent (ap- spans Asia and Oceania: counted once).
REGION_PREFIX_CONTINENT = {"us": "NA", "ca": "NA", "eu": "EU", "ap": "AS", "sa": "SA", "af": "AF", "me": "AS"}


def test_default_world_has_the_promised_shape(default_world: World) -> None:
    assert len(default_world.regions) >= 6
    continents = {REGION_PREFIX_CONTINENT[r.id.split("-")[0]] for r in default_world.regions}
    assert len(continents) >= 4
    assert len(default_world.countries) >= 30
    assert {c.code for c in default_world.countries} >= REQUIRED_COUNTRIES
    # The local world runs on two cores: one edge node and one gateway per region.
    assert all(r.edge_nodes == 1 and r.gateways == 1 for r in default_world.regions)


def test_default_world_loopbacks_are_unique_and_leave_127_0_to_the_servers(default_world: World) -> None:
    blocks = [c.loopback for c in default_world.countries]
    assert len(set(blocks)) == len(blocks)
    servers = ipaddress.IPv4Address("127.0.0.1")
    for block in blocks:
        assert block.prefixlen == 16
        assert block.subnet_of(ipaddress.IPv4Network("127.0.0.0/8"))
        assert servers not in block
        assert 1 <= block.network_address.packed[1] <= 254


def test_default_world_serves_every_country_from_exactly_one_home_region(default_world: World) -> None:
    for country in default_world.countries:
        assert default_world.home_region(country.code) is not None, country.code


def test_digest_is_the_sha256_of_the_file(default_world: World) -> None:
    assert default_world.digest == hashlib.sha256(DEFAULT_WORLD.read_bytes()).hexdigest()
    assert default_world.source == DEFAULT_WORLD


def test_small_world_values(small_world: World) -> None:
    assert small_world.seed == 7
    assert small_world.latency.path_inflation == 1.5
    frankfurt = small_world.region("eu-central-1")
    assert (frankfurt.pop, frankfurt.edge_nodes, frankfurt.gateways) == ("Frankfurt", 2, 0)
    # Defaults for what the file leaves out.
    assert small_world.region("us-east-1").edge_nodes == 1
    assert small_world.region("us-east-1").serves == ()
    korea = small_world.country("KR")
    assert korea.cidrs == (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:1::/48"))
    assert korea.continent_name == "Asia"
    assert small_world.country("DE").registered_country == "NL"
    assert small_world.home_region("KR") == small_world.region("ap-northeast-2")
    assert small_world.home_region("BR") is None


def test_country_lookup_is_case_insensitive(small_world: World) -> None:
    assert small_world.country("kr").code == "KR"


def test_unknown_region_and_country_are_geo_errors(small_world: World) -> None:
    with pytest.raises(UnknownRegionError, match="mars-1") as region_error:
        small_world.region("mars-1")
    assert isinstance(region_error.value, GeoError)
    assert "ap-northeast-2" in str(region_error.value)
    with pytest.raises(UnknownCountryError, match="'XX'"):
        small_world.country("XX")


def test_client_address_lies_in_the_country_block(small_world: World) -> None:
    korea = small_world.country("KR")
    assert korea.client_address() == "127.10.0.1"
    assert korea.client_address(256) == "127.10.1.0"
    assert ipaddress.ip_address(korea.client_address(65534)) in korea.loopback
    for bad in (0, 65535, -1):
        with pytest.raises(InvalidValueError, match="index"):
            korea.client_address(bad)


def test_values_are_validated_when_built_in_code_too() -> None:
    with pytest.raises(InvalidValueError, match="latitude"):
        Region(id="eu-central-1", pop="Frankfurt", latitude=91, longitude=0)
    with pytest.raises(InvalidValueError, match="loopback"):
        Country(
            code="KR",
            name="Korea",
            continent="AS",
            city="Seoul",
            latitude=0,
            longitude=0,
            loopback=ipaddress.IPv4Network("127.0.0.0/16"),
        )


def _replace(old: str, new: str) -> str:
    assert old in SMALL_WORLD, old
    return SMALL_WORLD.replace(old, new, 1)


BAD_WORLDS = [
    pytest.param(
        _replace("latitude = 39.04", "latitude = 139.04"),
        "regions[2].latitude",
        "must be between -90 and 90",
        id="latitude-out-of-range",
    ),
    pytest.param(
        _replace("longitude = 9.8", "longitude = -190"),
        "countries[1].longitude",
        "must be between -180 and 180",
        id="longitude-out-of-range",
    ),
    pytest.param(_replace('pop = "Seoul"\n', ""), "regions[0].pop", "is required", id="missing-pop"),
    pytest.param(
        _replace("edge_nodes = 2", 'edge_nodes = "two"'),
        "regions[1].edge_nodes",
        "must be an integer, not a string",
        id="wrong-type",
    ),
    pytest.param(
        _replace("edge_nodes = 2", "edge_nodes = true"),
        "regions[1].edge_nodes",
        "must be an integer, not a boolean",
        id="boolean-is-not-a-count",
    ),
    pytest.param(
        _replace("gateways = 0", "gateways = -1"),
        "regions[1].gateways",
        "must not be negative",
        id="negative",
    ),
    pytest.param(
        _replace("edge_nodes = 2", "edge_node = 2"),
        "regions[1].edge_node",
        "unknown key",
        id="typo-is-an-unknown-key",
    ),
    pytest.param(
        _replace('loopback = "127.20.0.0/16"', 'loopback = "127.10.0.0/16"'),
        "countries[1].loopback",
        "127.10.0.0/16 is used twice",
        id="duplicate-loopback",
    ),
    pytest.param(
        _replace('loopback = "127.20.0.0/16"', 'loopback = "127.0.0.0/16"'),
        "countries[1].loopback",
        "127.N.0.0/16 with N from 1 to 254",
        id="servers-block",
    ),
    pytest.param(
        _replace('loopback = "127.20.0.0/16"', 'loopback = "127.20.0.0/24"'),
        "countries[1].loopback",
        "127.N.0.0/16",
        id="not-a-slash-16",
    ),
    pytest.param(
        _replace('loopback = "127.20.0.0/16"', 'loopback = "127.20.0.1/16"'),
        "countries[1].loopback",
        "is not a network in CIDR notation",
        id="host-bits-set",
    ),
    pytest.param(
        _replace('cidrs = ["198.51.100.0/24"]', 'cidrs = ["192.0.2.128/25"]'),
        "countries[1]",
        "overlaps 192.0.2.0/24 of KR",
        id="overlapping-cidrs",
    ),
    pytest.param(
        _replace('continent = "SA"', 'continent = "Europe"'),
        "countries[2].continent",
        "must be one of AF, AN, AS, EU, NA, OC, SA",
        id="bad-continent",
    ),
    pytest.param(
        _replace('code = "BR"', 'code = "br"'), "countries[2].code", "upper case", id="lower-case-code"
    ),
    pytest.param(
        _replace('code = "BR"', 'code = "KR"'),
        "countries[2].code",
        "KR is used twice",
        id="duplicate-country",
    ),
    pytest.param(
        _replace('serves = ["DE"]', 'serves = ["FR"]'),
        "regions[1].serves[0]",
        "country FR is not defined",
        id="serves-unknown-country",
    ),
    pytest.param(
        _replace('serves = ["DE"]', 'serves = ["KR"]'),
        "regions[1].serves[0]",
        "already served by ap-northeast-2",
        id="served-twice",
    ),
    pytest.param(
        _replace("path_inflation = 1.5", "path_inflation = 0.5"),
        "latency.path_inflation",
        "must be at least 1",
        id="inflation-below-one",
    ),
    pytest.param(
        _replace("fiber_km_per_ms = 200.0", "fiber_km_per_ms = 400.0"),
        "latency.fiber_km_per_ms",
        "speed of light",
        id="faster-than-light",
    ),
    pytest.param(
        _replace("jitter_ms = 2.0", "jitter_ms = nan"), "latency.jitter_ms", "finite", id="nan-jitter"
    ),
    pytest.param(_replace("seed = 7", 'seed = "seven"'), "seed", "must be an integer", id="seed-type"),
    pytest.param(_replace("seed = 7", ""), "seed", "is required", id="missing-seed"),
    pytest.param(SMALL_WORLD.split("[[countries]]")[0], "countries", "is required", id="no-countries"),
    pytest.param(
        SMALL_WORLD.split("[[countries]]")[0].replace("seed = 7", "seed = 7\ncountries = []"),
        "countries",
        "must be a non-empty array of tables ([[countries]]), not an array",
        id="empty-countries",
    ),
    pytest.param(
        _replace('cidrs = ["198.51.100.0/24"]', 'cidrs = ["198.51.100.0/24", 5]'),
        "countries[1].cidrs[1]",
        "must be a string, not an integer",
        id="cidr-type",
    ),
    pytest.param(
        _replace('cidrs = ["198.51.100.0/24"]', 'cidrs = ["127.99.0.0/16"]'),
        "countries[1].cidrs[0]",
        "is loopback",
        id="loopback-as-cidr",
    ),
    pytest.param(
        _replace("seed = 7", "seed = 7\nsede = 8"), "sede", "unknown key", id="unknown-top-level-key"
    ),
]


@pytest.mark.parametrize(("text", "key", "reason"), BAD_WORLDS)
def test_bad_world_files_name_the_key_and_the_problem(
    write_world: WorldWriter, text: str, key: str, reason: str
) -> None:
    path = write_world(text)
    with pytest.raises(WorldFileError) as caught:
        load_world(path)
    error = caught.value
    assert error.key == key
    assert reason in error.reason
    assert error.path == str(path)
    assert str(error).startswith(f"{path}: {key}: ")


def test_error_message_has_the_documented_shape(write_world: WorldWriter) -> None:
    path = write_world(_replace("latitude = 39.04", "latitude = 139.04"))
    with pytest.raises(WorldFileError) as caught:
        load_world(path)
    assert str(caught.value) == f"{path}: regions[2].latitude: must be between -90 and 90 (got 139.04)"


def test_missing_file_is_a_world_file_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(WorldFileError, match="cannot read the world file") as caught:
        load_world(path)
    assert caught.value.key == ""
    assert str(caught.value).startswith(str(path))


def test_invalid_toml_is_a_world_file_error(write_world: WorldWriter) -> None:
    with pytest.raises(WorldFileError, match="is not valid TOML"):
        load_world(write_world("seed = \n"))


def test_non_utf8_is_a_world_file_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "São"'.encode("latin-1"))
    with pytest.raises(WorldFileError, match="is not UTF-8"):
        load_world(path)


@pytest.mark.parametrize("text", ["30s", "30s,", ",1h", "soon,1h", "30s,0s", "30s,1h,2h"])
def test_a_heat_wave_needs_at_and_for(text: str) -> None:
    with pytest.raises(InvalidValueError, match="heat_wave"):
        Region(id="ap-northeast-2", pop="Seoul", latitude=37.5, longitude=127, heat_wave=text)


def test_the_default_world_has_a_heat_wave_in_seoul(default_world: World) -> None:
    assert default_world.region("ap-northeast-2").heat_wave == "30s,1h"
