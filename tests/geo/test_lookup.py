"""Lookups through a stack of databases: order, unknowns, bad files, the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo.database import build_world_db
from geo.errors import GeoDatabaseError, GeoError, InvalidAddressError
from geo.lookup import UNKNOWN, GeoLocator, Location
from geo.world import World
from tests.geo.conftest import city_record, write_mmdb

# Public addresses from documentation-free real ranges, located by the "real" database.
PUBLIC_V4 = "8.8.8.8"
PUBLIC_V6 = "2001:4860:4860::8888"


@pytest.fixture
def world_db(small_world: World, tmp_path: Path) -> Path:
    return build_world_db(small_world, tmp_path / "world.mmdb")


@pytest.fixture
def real_db(tmp_path: Path) -> Path:
    """A stand-in for GeoLite2-City: public networks, and one that overlaps the world."""
    return write_mmdb(
        tmp_path / "GeoLite2-City.mmdb",
        database_type="GeoLite2-City",
        records=[
            ("8.8.8.0/24", city_record("US", "United States", "NA", "Mountain View", 37.386, -122.0838)),
            ("2001:4860::/32", city_record("US", "United States", "NA", "Mountain View", 37.386, -122.0838)),
            # The real database knows loopback as somewhere else entirely: the world
            # database must win for simulated clients because it comes first.
            ("127.0.0.0/8", city_record("AQ", "Antarctica", "AN", "McMurdo", -77.85, 166.67)),
        ],
    )


def test_world_addresses_are_located_by_the_world_database(world_db: Path) -> None:
    with GeoLocator([world_db]) as locator:
        location = locator.locate("127.10.3.4")
    assert location == Location(
        country="KR",
        country_name="South Korea",
        continent="AS",
        city="Seoul",
        latitude=36.9,
        longitude=127.3,
        source=str(world_db),
    )
    assert location.known


def test_represented_country_wins_over_registered_country(world_db: Path, small_world: World) -> None:
    with GeoLocator([world_db]) as locator:
        assert locator.locate(small_world.country("DE").client_address(9)).country == "DE"


def test_record_with_only_a_registered_country_has_no_country(tmp_path: Path) -> None:
    # Like MaxMind records for satellite and anycast networks: who holds the block is
    # known, where the user is is not. The registrant is not a location.
    record = {"registered_country": {"iso_code": "US", "names": {"en": "United States"}}}
    path = write_mmdb(
        tmp_path / "c.mmdb", database_type="GeoIP2-Country", records=[("203.0.113.0/24", record)]
    )
    with GeoLocator([path]) as locator:
        location = locator.locate("203.0.113.9")
    assert location.country is None
    assert location.source == str(path)


def test_stack_is_asked_in_order_first_match_wins(world_db: Path, real_db: Path) -> None:
    with GeoLocator([world_db, real_db]) as locator:
        simulated = locator.locate("127.10.0.1")
        public = locator.locate(PUBLIC_V4)
        public_v6 = locator.locate(PUBLIC_V6)
    assert (simulated.country, simulated.source) == ("KR", str(world_db))
    assert (public.country, public.city, public.source) == ("US", "Mountain View", str(real_db))
    assert public_v6.source == str(real_db)
    with GeoLocator([real_db, world_db]) as reversed_stack:
        assert reversed_stack.locate("127.10.0.1").country == "AQ"


def test_address_in_no_database_is_the_unknown_location(world_db: Path, real_db: Path) -> None:
    with GeoLocator([world_db]) as locator:
        for address in ("127.0.0.1", "127.255.0.1", "8.8.8.8", "::1"):
            location = locator.locate(address)
            assert location is UNKNOWN
            assert not location.known
    with GeoLocator([world_db, real_db]) as locator:
        for address in ("1.1.1.1", "10.0.0.1", "2a00:1450::1"):
            assert locator.locate(address) is UNKNOWN
    assert UNKNOWN.as_dict() == dict.fromkeys(
        ("country", "country_name", "continent", "city", "latitude", "longitude", "source")
    )


def test_ipv4_mapped_ipv6_addresses_are_located_as_ipv4(world_db: Path) -> None:
    with GeoLocator([world_db]) as locator:
        assert locator.locate("::ffff:127.20.0.1").country == "DE"
        assert locator.locate("::FFFF:127.20.0.1").country == "DE"


def test_ipv6_address_skips_an_ipv4_only_database(tmp_path: Path, world_db: Path) -> None:
    v4_only = write_mmdb(
        tmp_path / "v4.mmdb",
        database_type="GeoLite2-Country",
        ip_version=4,
        records=[("8.8.8.0/24", {"country": {"iso_code": "US"}, "continent": {"code": "NA"}})],
    )
    with GeoLocator([v4_only, world_db]) as locator:
        assert locator.locate("2001:db8:1::5").country == "KR"
        country_only = locator.locate(PUBLIC_V4)
    assert (country_only.country, country_only.continent, country_only.city) == ("US", "NA", None)
    assert country_only.latitude is None


@pytest.mark.parametrize(
    "address",
    # Legacy forms getaddrinfo would take: octal, hex, short; and a link's zone id.
    ["not-an-ip", "", "127.0.0.256", "::g", "1.2.3", "127.010.0.1", "0x7f.10.0.1", "127.10.1", "fe80::1%lo"],
)
def test_invalid_address_is_an_error_of_its_own(world_db: Path, address: str) -> None:
    with GeoLocator([world_db]) as locator, pytest.raises(InvalidAddressError, match="is not an IP address"):
        locator.locate(address)
    assert issubclass(InvalidAddressError, ValueError)


def test_missing_database_fails_at_open_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "GeoLite2-City.mmdb"
    with pytest.raises(GeoDatabaseError) as caught:
        GeoLocator([path])
    assert str(caught.value) == f"{path}: no such file"


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, world\n", b"\xab\xcd\xefMaxMind.com" + b"\x00" * 64],
    ids=["empty", "text", "metadata-marker-only"],
)
def test_corrupt_database_fails_at_open_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.mmdb"
    path.write_bytes(content)
    with pytest.raises(GeoDatabaseError, match="is not a valid MaxMind DB file") as caught:
        GeoLocator([path])
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_truncated_database_fails_at_open(world_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.mmdb"
    path.write_bytes(world_db.read_bytes()[:500])
    with pytest.raises(GeoDatabaseError, match="is not a valid MaxMind DB file"):
        GeoLocator([path])


def test_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(GeoDatabaseError, match="is a directory"):
        GeoLocator([tmp_path])


def test_wrong_database_type_fails_at_open(tmp_path: Path, world_db: Path) -> None:
    asn = write_mmdb(
        tmp_path / "GeoLite2-ASN.mmdb",
        database_type="GeoLite2-ASN",
        records=[("8.8.8.0/24", {"autonomous_system_number": 15169})],
    )
    with pytest.raises(GeoDatabaseError, match="is a GeoLite2-ASN database; expected") as caught:
        GeoLocator([world_db, asn])
    assert caught.value.path == str(asn)


def test_cache_answers_repeated_lookups_and_is_bounded(world_db: Path) -> None:
    with GeoLocator([world_db], cache_size=2) as locator:
        first = locator.locate("127.10.0.1")
        assert locator.locate("127.10.0.1") is first
        locator.locate("127.20.0.1")
        locator.locate("127.30.0.1")
        info = locator.cache_info()
        assert (info.hits, info.misses, info.currsize, info.maxsize) == (1, 3, 2, 2)
        assert locator.locate_uncached("127.10.0.1") == first
        assert locator.cache_info().misses == 3


def test_cache_can_be_disabled(world_db: Path) -> None:
    with GeoLocator([world_db], cache_size=0) as locator:
        assert locator.locate("127.10.0.1").country == "KR"
        assert locator.cache_info().currsize == 0


def test_for_world_builds_and_stacks(small_world: World, real_db: Path, tmp_path: Path) -> None:
    with GeoLocator.for_world(
        small_world, cache_dir=tmp_path / "cache", extra_databases=[real_db]
    ) as locator:
        kinds = [info.database_type for info in locator.databases]
        assert kinds == ["EdgeCDN-World-City", "GeoLite2-City"]
        assert locator.locate("127.30.0.9").city == "São Paulo"
        assert locator.locate(PUBLIC_V4).country == "US"


def test_closed_locator_refuses_lookups(world_db: Path) -> None:
    locator = GeoLocator([world_db])
    locator.locate("127.10.0.1")
    locator.close()
    with pytest.raises(GeoError, match="closed"):
        locator.locate("127.10.0.1")


def test_a_locator_needs_a_database() -> None:
    with pytest.raises(GeoError, match="at least one database"):
        GeoLocator([])


def test_addresses_of_one_place_share_one_location(world_db: Path) -> None:
    with GeoLocator([world_db], cache_size=0) as locator:
        first = locator.locate("127.10.0.1")
        assert locator.locate("127.10.200.7") is first
        assert locator.locate("192.0.2.1") is first  # a real network of the same country
        assert locator.locate("127.20.0.1") is not first


def test_databases_are_read_by_the_c_extension(world_db: Path) -> None:
    with GeoLocator([world_db]) as locator:
        reader = locator._stack.databases[0]._reader
        assert type(reader).__module__ == "maxminddb.extension"
