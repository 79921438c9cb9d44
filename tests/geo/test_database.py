"""The world's MaxMind DB: read back through geoip2 exactly, cached by the world file's hash."""

from __future__ import annotations

import os
import time
from pathlib import Path

import geoip2.database
import geoip2.errors
import pytest

from geo.database import DATABASE_TYPE, build_world_db, ensure_world_db, world_db_path
from geo.errors import GeoDatabaseError
from geo.world import World, load_world
from tests.geo.conftest import SMALL_WORLD, WorldWriter


def test_every_country_round_trips_through_geoip2(default_world: World, tmp_path: Path) -> None:
    path = build_world_db(default_world, tmp_path / "world.mmdb")
    with geoip2.database.Reader(str(path)) as reader:
        assert reader.metadata().database_type == DATABASE_TYPE
        for country in default_world.countries:
            for index in (1, 255, 65534):
                answer = reader.city(country.client_address(index))
                assert answer.country.iso_code == country.code
                assert answer.country.name == country.name
                assert answer.continent.code == country.continent
                assert answer.continent.name == country.continent_name
                assert answer.city.name == country.city
                assert answer.location.latitude == country.latitude
                assert answer.location.longitude == country.longitude
                assert answer.registered_country.iso_code == country.code
                assert answer.traits.network == country.loopback


def test_servers_address_and_public_addresses_are_not_in_the_world(
    default_world: World, tmp_path: Path
) -> None:
    path = build_world_db(default_world, tmp_path / "world.mmdb")
    with geoip2.database.Reader(str(path)) as reader:
        for address in ("127.0.0.1", "127.255.0.1", "8.8.8.8", "2001:4860::8888"):
            with pytest.raises(geoip2.errors.AddressNotFoundError):
                reader.city(address)


def test_real_networks_and_ipv6_are_written(small_world: World, tmp_path: Path) -> None:
    path = build_world_db(small_world, tmp_path / "world.mmdb")
    with geoip2.database.Reader(str(path)) as reader:
        assert reader.city("192.0.2.77").country.iso_code == "KR"
        assert reader.city("2001:db8:1:ffff::1").country.iso_code == "KR"
        assert reader.city("198.51.100.1").city.name == "Berlin"
        assert reader.city("127.30.4.5").city.name == "São Paulo"
        with pytest.raises(geoip2.errors.AddressNotFoundError):
            reader.city("2001:db8:2::1")


def test_registered_country_is_written_apart_from_the_represented_one(
    small_world: World, tmp_path: Path
) -> None:
    path = build_world_db(small_world, tmp_path / "world.mmdb")
    with geoip2.database.Reader(str(path)) as reader:
        answer = reader.city(small_world.country("DE").client_address())
    assert answer.country.iso_code == "DE"
    assert answer.registered_country.iso_code == "NL"


def test_default_world_builds_well_under_two_seconds(default_world: World, tmp_path: Path) -> None:
    started = time.perf_counter()
    build_world_db(default_world, tmp_path / "world.mmdb")
    # The budget is 2 s; a generous margin keeps a loaded CI machine from flaking.
    assert time.perf_counter() - started < 2.0


def test_ensure_reuses_the_cached_database(small_world: World, tmp_path: Path) -> None:
    first = ensure_world_db(small_world, tmp_path)
    stamp = first.stat().st_mtime_ns
    os.utime(first, ns=(stamp - 10**9, stamp - 10**9))  # so a rewrite could not hide in the same tick
    second = ensure_world_db(small_world, tmp_path)
    assert second == first == world_db_path(small_world, tmp_path)
    assert second.stat().st_mtime_ns == stamp - 10**9
    assert small_world.digest in first.name


def test_ensure_builds_a_new_database_when_the_world_changes(
    write_world: WorldWriter, tmp_path: Path
) -> None:
    before = load_world(write_world(SMALL_WORLD))
    after = load_world(write_world(SMALL_WORLD.replace('city = "Berlin"', 'city = "Munich"')))
    old = ensure_world_db(before, tmp_path / "cache")
    new = ensure_world_db(after, tmp_path / "cache")
    assert old != new
    with geoip2.database.Reader(str(new)) as reader:
        assert reader.city("127.20.0.1").city.name == "Munich"


def test_ensure_rebuilds_a_damaged_cached_database(small_world: World, tmp_path: Path) -> None:
    path = ensure_world_db(small_world, tmp_path)
    path.write_bytes(path.read_bytes()[:100])  # as if a crash cut the write short
    assert ensure_world_db(small_world, tmp_path) == path
    with geoip2.database.Reader(str(path)) as reader:
        assert reader.city("127.10.0.1").country.iso_code == "KR"


def test_a_world_built_in_code_gets_a_stable_cache_key(small_world: World, tmp_path: Path) -> None:
    in_memory = World(seed=1, regions=small_world.regions, countries=small_world.countries)
    assert world_db_path(in_memory, tmp_path) == world_db_path(in_memory, tmp_path)
    assert world_db_path(in_memory, tmp_path) != world_db_path(small_world, tmp_path)
    assert ensure_world_db(in_memory, tmp_path).is_file()


def test_unwritable_destination_is_a_database_error(small_world: World, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(GeoDatabaseError, match="cannot write the database") as caught:
        build_world_db(small_world, blocker / "world.mmdb")
    assert caught.value.path == str(blocker / "world.mmdb")
    assert not list(tmp_path.glob("**/*.tmp"))
