"""The geo database at run time (issue 24, finding 7): nothing a database file does can take
a lookup down. A damaged record is an unknown location (counted, logged once); a file
replaced on disk is taken up; one truncated in place is never read again, and kept serving.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import maxminddb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from maxminddb.reader import Reader as PureReader

from geo import dbfile
from geo.database import build_world_db
from geo.lookup import UNKNOWN, GeoLocator
from geo.world import World, load_world
from tests.geo.conftest import SMALL_WORLD, city_record, write_mmdb


@pytest.fixture
def world_db(small_world: World, tmp_path: Path) -> Path:
    return build_world_db(small_world, tmp_path / "world.mmdb")


def _data_section(path: Path) -> tuple[bytes, int, int]:
    data = path.read_bytes()
    with maxminddb.open_database(path, maxminddb.MODE_MEMORY) as reader:
        metadata = reader.metadata()
    return data, metadata.search_tree_size + 16, data.rindex(b"\xab\xcd\xefMaxMind.com")


def _damaged(world_db: Path, out: Path) -> Path:
    data, start, end = _data_section(world_db)
    out.write_bytes(data[:start] + b"\xff" * (end - start) + data[end:])
    return out


def test_a_corrupt_record_is_an_unknown_location_counted_and_logged_once(
    world_db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = _damaged(world_db, tmp_path / "damaged.mmdb")
    seen: list[str] = []
    with (
        caplog.at_level(logging.WARNING, logger="geo.lookup"),
        GeoLocator([damaged, world_db], on_bad_record=seen.append, cache_size=0) as locator,
    ):
        for address in ("127.10.0.1", "127.20.0.1", "127.10.9.9"):
            assert locator.locate(address) is UNKNOWN  # the damaged file holds it: not asked further
        assert locator.locate("8.8.8.8") is UNKNOWN  # in no database: not a bad record
    assert seen == [str(damaged)] * 3
    per_lookup = [r for r in caplog.records if "answer as an unknown location" in r.getMessage()]
    assert len(per_lookup) == 1  # once per database, not per request
    assert any("3 of 3 records cannot be read" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "record",
    [
        {"country": "KR"},  # a string where a map belongs
        {"country": {"iso_code": 7}},
        {"country": {"iso_code": "KR"}, "location": {"latitude": "north", "longitude": 1.0}},
        {"city": {"names": ["Seoul"]}},
    ],
)
def test_a_record_of_the_wrong_shape_is_an_unknown_location(tmp_path: Path, record: dict[str, Any]) -> None:
    path = write_mmdb(tmp_path / "odd.mmdb", database_type="GeoLite2-City", records=[("8.8.8.0/24", record)])
    seen: list[str] = []
    with GeoLocator([path], on_bad_record=seen.append) as locator:
        assert locator.locate("8.8.8.8") is UNKNOWN
    assert seen == [str(path)]


# Random damage to a database: libmaxminddb's C extension segfaults on some of it (a map
# key that is not a string), so each seed runs in a child process that must live.
_FUZZ = """
import random, sys
from pathlib import Path
from geo.errors import GeoDatabaseError
from geo.lookup import GeoLocator
from geo.world import load_world
world = load_world(Path(sys.argv[1]))
data = Path(sys.argv[2]).read_bytes()
start, end = int(sys.argv[3]), int(sys.argv[4])
answered = refused = 0
for seed in range(int(sys.argv[5])):
    rnd = random.Random(seed)
    damaged = bytearray(data)
    low = 0 if seed % 4 == 0 else start  # now and then the search tree too
    for _ in range(rnd.randint(1, 40)):
        damaged[rnd.randrange(low, end)] = rnd.randrange(256)
    path = Path(sys.argv[6]) / f"fuzz-{seed}.mmdb"
    path.write_bytes(bytes(damaged))
    try:
        locator = GeoLocator([path], cache_size=0)
    except GeoDatabaseError:
        refused += 1
        continue
    for country in world.countries:
        for address in (country.client_address(), "8.8.8.8", "2001:db8:1::1"):
            locator.locate(address)
            answered += 1
    locator.close()
print(answered, refused)
"""


def test_randomly_damaged_databases_never_crash_a_lookup(world_db: Path, tmp_path: Path) -> None:
    world_file = tmp_path / "small.toml"
    world_file.write_text(SMALL_WORLD)
    _, start, end = _data_section(world_db)
    argv = [str(world_file), str(world_db), str(start), str(end), "150", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-c", _FUZZ, *argv], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    answered, _ = map(int, result.stdout.split())
    assert answered > 0


@pytest.fixture
def many_pages_db(tmp_path: Path) -> Path:
    """A database of many pages: truncated, its later pages are past the end of the file,
    where a mapping of it faults (SIGBUS) rather than reading zeros."""
    records = [
        (f"10.{i // 256}.{i % 256}.0/24", city_record("US", "USA", "NA", f"Town {i}", 40.0, -i / 100))
        for i in range(3000)
    ]
    return write_mmdb(tmp_path / "GeoLite2-City.mmdb", database_type="GeoLite2-City", records=records)


def test_truncation_in_place_under_a_running_locator_is_survived(
    many_pages_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert many_pages_db.stat().st_size > 16 * 4096
    results: list[tuple[str, str]] = []
    report = lambda path, result: results.append((path, result))  # noqa: E731
    with GeoLocator([many_pages_db], on_reload=report) as locator:
        assert locator.locate_uncached("10.0.1.1").city == "Town 1"
        with many_pages_db.open("r+b") as file:  # what `truncate -s` or a writer in place does
            # Half, on a page boundary: the tail (records) is then past the end of the file.
            file.truncate(many_pages_db.stat().st_size // 2 // 4096 * 4096)
        # A mapped file would SIGBUS here; the private copy answers as before.
        for i in (2, 1500, 2999):
            assert locator.locate_uncached(f"10.{i // 256}.{i % 256}.9").city == f"Town {i}"
        assert locator.refresh() is False  # the truncated file is refused; the old one stays
        assert locator.refresh() is False  # and not tried again until it changes
        assert locator.locate_uncached("10.0.7.1").city == "Town 7"
    assert results == [(str(many_pages_db), "failed")]
    assert any("kept the one in use" in r.getMessage() for r in caplog.records)


def _other_world(write: Any) -> World:
    """The small world with Korea's city renamed: a database whose answers differ."""
    return load_world(write(SMALL_WORLD.replace('city = "Seoul"', 'city = "Busan"')))


def test_an_atomic_replacement_is_taken_up_with_a_fresh_cache(
    world_db: Path, write_world: Any, tmp_path: Path
) -> None:
    results: list[str] = []
    with GeoLocator([world_db], on_reload=lambda _path, result: results.append(result)) as locator:
        assert locator.locate("127.10.0.1").city == "Seoul"
        build_world_db(_other_world(write_world), tmp_path / "next.mmdb")
        os.replace(tmp_path / "next.mmdb", world_db)
        assert locator.locate("127.10.0.1").city == "Seoul"  # not checked before the interval
        assert locator.refresh() is True
        assert locator.locate("127.10.0.1").city == "Busan"  # the cached answer went with the old file
        assert locator.refresh() is False  # nothing changed since
    assert results == ["ok"]


def test_lookups_check_the_files_every_interval_and_reload_in_the_background(
    world_db: Path, write_world: Any, tmp_path: Path
) -> None:
    now = [0.0]
    with GeoLocator([world_db], reload_interval_s=1.0, clock=lambda: now[0]) as locator:
        assert locator.locate("127.10.0.1").city == "Seoul"
        build_world_db(_other_world(write_world), tmp_path / "next.mmdb")
        os.replace(tmp_path / "next.mmdb", world_db)
        now[0] = 0.5
        assert locator.locate("127.10.0.1").city == "Seoul"  # no stat before the interval is up
        now[0] = 1.0
        deadline = time.monotonic() + 10
        while locator.locate("127.10.0.1").city != "Busan":  # taken up on the reload thread
            assert time.monotonic() < deadline, "the replaced file was never taken up"
            time.sleep(0.01)


def test_a_file_refused_while_half_written_is_taken_up_once_whole(
    world_db: Path, write_world: Any, tmp_path: Path
) -> None:
    whole = build_world_db(_other_world(write_world), tmp_path / "next.mmdb").read_bytes()
    with GeoLocator([world_db]) as locator:
        with world_db.open("r+b") as file:  # rewritten in place: first half ...
            file.truncate(0)
            file.write(whole[: len(whole) // 2])
        assert locator.refresh() is False
        assert locator.locate_uncached("127.10.0.1").city == "Seoul"
        with world_db.open("ab") as file:  # ... then the rest
            file.write(whole[len(whole) // 2 :])
        assert locator.refresh() is True
        assert locator.locate_uncached("127.10.0.1").city == "Busan"


def test_a_big_file_serves_at_once_and_moves_to_the_c_extension_once_verified(
    world_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("geo.lookup.SYNC_VERIFY_BYTES", 1)  # every file is "big"
    with GeoLocator([world_db]) as locator:
        assert locator.locate_uncached("127.10.0.1").country == "KR"
        database = locator._stack.databases[0]
        deadline = time.monotonic() + 10
        while type(database._reader).__module__ != "maxminddb.extension":
            assert time.monotonic() < deadline, "never moved to the C extension"
            time.sleep(0.01)
        assert database.verdict is not None
        assert database.verdict.sound
        assert locator.locate_uncached("127.20.0.1").country == "DE"


def test_the_private_copy_is_sealed(world_db: Path) -> None:
    loaded = dbfile.load(world_db)
    with dbfile._private_copy(loaded.data) as copy:
        fd = os.open(copy, os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.ftruncate(fd, 10)
        finally:
            os.close(fd)


def test_a_real_city_record_verifies_sound(tmp_path: Path) -> None:
    path = write_mmdb(
        tmp_path / "city.mmdb",
        database_type="GeoLite2-City",
        records=[("8.8.8.0/24", city_record("US", "United States", "NA", "Mountain View", 37.4, -122.1))],
    )
    verdict = dbfile.load(path).verdict
    assert verdict is not None
    assert (verdict.records, verdict.bad, verdict.sound) == (1, 0, True)


@settings(max_examples=60, deadline=None)
@given(
    record_size=st.sampled_from([24, 28, 32]),
    tree=st.binary(min_size=0, max_size=8 * 40),
)
def test_the_tree_scan_reads_nodes_as_maxminds_reader_does(record_size: int, tree: bytes) -> None:
    node_bytes = record_size // 4
    node_count = len(tree) // node_bytes
    reference = PureReader.__new__(PureReader)
    reference._record_size = record_size
    reference._buffer = tree
    expected = {
        value
        for node in range(node_count)
        for value in (reference._read_node(node, 0), reference._read_node(node, 1))
        if value > node_count
    }
    assert dbfile._pointers(tree, node_count, record_size) == expected
