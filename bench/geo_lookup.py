"""Geo lookups: EdgeCDN's GeoLocator side by side with the raw maxminddb reader and geoip2.

    .venv/bin/python -m bench.geo_lookup [--quick] [--cpu N]

Measures, pinned to one core:

* building the default world's database (budget: under 2 s);
* uncached lookups of distinct simulated-client addresses (budget: >= 100k/s), against
  the raw C reader ``maxminddb.Reader.get`` (the floor: it only decodes the record) and
  ``geoip2.database.Reader.city`` (MaxMind's own model API);
* cached lookups of a working set that fits the LRU cache (budget: >= 1M/s);
* a public address that misses the world database and is answered by the next database
  of the stack (a synthetic GeoLite2-like file), to show what stacking costs.

Ratios are "how many times the raw maxminddb reader's rate". Exit status 1 when a budget
is missed, so CI can run it.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import geoip2.database
import maxminddb
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from geo.database import build_world_db
from geo.lookup import GeoLocator
from geo.world import World, load_world

DEFAULT_WORLD = Path(__file__).resolve().parent.parent / "deploy" / "local" / "world.toml"
UNCACHED_BUDGET = 100_000  # lookups/s
CACHED_BUDGET = 1_000_000  # lookups/s
BUILD_BUDGET_S = 2.0
# The peers read through the C extension, as GeoLocator does: never MODE_AUTO's silent fallback
# to pure Python, which would measure a peer ten times slower than it is (it fails instead).
PEER_MODE = maxminddb.MODE_MMAP_EXT


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    name: str
    rate: float  # operations per second
    baseline: float | None = None  # the peer's rate, for the ratio
    budget: float | None = None  # the minimum rate the issue asks for

    @property
    def ratio(self) -> str:
        return "" if self.baseline is None else f"{self.rate / self.baseline:.2f}x"

    @property
    def verdict(self) -> str:
        if self.budget is None:
            return ""
        return "ok" if self.rate >= self.budget else f"MISSED (< {self.budget:,.0f}/s)"


def _each(function: Callable[[str], object], items: Sequence[str], rounds: int = 1) -> Callable[[], None]:
    """A run that calls ``function`` on every item and keeps no result (no GC pressure)."""

    def run() -> None:
        for _ in range(rounds):
            for item in items:
                function(item)

    return run


def _best_rate(run: Callable[[], object], operations: int, repeats: int) -> float:
    """Operations per second of the fastest of ``repeats`` runs (least disturbed by noise)."""
    best = min(_timed(run) for _ in range(repeats))
    return operations / best


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def _client_addresses(world: World, count: int, rng: random.Random) -> list[str]:
    """Distinct addresses spread over every country, as a load generator would use."""
    per_country = -(-count // len(world.countries))
    addresses = [
        country.client_address(index)
        for country in world.countries
        for index in rng.sample(range(1, 65_535), per_country)
    ]
    rng.shuffle(addresses)
    return addresses[:count]


def _synthetic_real_db(path: Path, networks: int, rng: random.Random) -> list[str]:
    """A GeoLite2-City-shaped database of random public /24s; returns one address in each."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="GeoLite2-City",
        languages=["en"],
        description="bench",
    )
    addresses = []
    for _ in range(networks):
        first = rng.choice([n for n in range(1, 224) if n not in (10, 127)])
        prefix = f"{first}.{rng.randrange(256)}.{rng.randrange(256)}"
        record = {
            "continent": {"code": "NA", "names": {"en": "North America"}},
            "country": {"iso_code": "US", "names": {"en": "United States"}},
            "city": {"names": {"en": "Somewhere"}},
            "location": {"latitude": 37.75, "longitude": -97.82, "accuracy_radius": 1000},
        }
        writer.insert_network(IPSet([f"{prefix}.0/24"]), record)
        addresses.append(f"{prefix}.{rng.randrange(1, 255)}")
    writer.to_db_file(str(path))
    return addresses


def _build_rows(world: World, directory: Path, repeats: int) -> list[Row]:
    times = [
        _timed(functools.partial(build_world_db, world, directory / f"build-{i}.mmdb"))
        for i in range(repeats)
    ]
    median = statistics.median(times)
    return [
        Row(
            name=f"build the world DB (median {median * 1000:.1f} ms)",
            rate=1 / median,
            budget=1 / BUILD_BUDGET_S,
        )
    ]


def _lookup_rows(world_db: Path, addresses: list[str], repeats: int) -> list[Row]:
    n = len(addresses)
    with (
        maxminddb.open_database(world_db, PEER_MODE) as raw,
        geoip2.database.Reader(str(world_db), mode=PEER_MODE) as official,
        GeoLocator([world_db]) as locator,
    ):
        raw_get, city, uncached = raw.get, official.city, locator.locate_uncached
        raw_rate = _best_rate(_each(raw_get, addresses), n, repeats)
        geoip2_rate = _best_rate(_each(city, addresses), n, repeats)
        uncached_rate = _best_rate(_each(uncached, addresses), n, repeats)
    working_set = addresses[:10_000]
    rounds = max(1, n // len(working_set))
    with GeoLocator([world_db], cache_size=len(working_set)) as cached_locator:
        locate = cached_locator.locate
        for address in working_set:  # warm the cache: this measures hits only
            locate(address)
        cached_rate = _best_rate(_each(locate, working_set, rounds), rounds * len(working_set), repeats)
    with maxminddb.open_database(world_db, PEER_MODE) as raw:
        # The obvious hand-rolled peer: the raw reader behind functools.lru_cache.
        raw_cached = functools.lru_cache(maxsize=len(working_set))(raw.get)
        for address in working_set:
            raw_cached(address)
        raw_cached_rate = _best_rate(
            _each(raw_cached, working_set, rounds), rounds * len(working_set), repeats
        )
    return [
        Row(name="maxminddb Reader.get (raw C, baseline)", rate=raw_rate, baseline=raw_rate),
        Row(name="geoip2 Reader.city", rate=geoip2_rate, baseline=raw_rate),
        Row(name="GeoLocator, uncached", rate=uncached_rate, baseline=raw_rate, budget=UNCACHED_BUDGET),
        Row(name="lru_cache(maxminddb Reader.get), hits", rate=raw_cached_rate, baseline=raw_rate),
        Row(name="GeoLocator, cached (hits)", rate=cached_rate, baseline=raw_rate, budget=CACHED_BUDGET),
    ]


def _stack_rows(world_db: Path, directory: Path, repeats: int, rng: random.Random) -> list[Row]:
    real_db = directory / "GeoLite2-City-synthetic.mmdb"
    public = _synthetic_real_db(real_db, 2_000, rng) * 10
    n = len(public)
    with (
        maxminddb.open_database(real_db, PEER_MODE) as raw,
        GeoLocator([world_db, real_db]) as stacked,
    ):
        raw_get, uncached = raw.get, stacked.locate_uncached
        raw_rate = _best_rate(_each(raw_get, public), n, repeats)
        stacked_rate = _best_rate(_each(uncached, public), n, repeats)
    return [
        Row(name="maxminddb Reader.get on the real DB (baseline)", rate=raw_rate, baseline=raw_rate),
        Row(name="GeoLocator world->real miss-then-hit, uncached", rate=stacked_rate, baseline=raw_rate),
    ]


def _print(title: str, rows: Sequence[Row]) -> None:
    print(f"\n{title}")
    print(f"  {'case':<52} {'ops/s':>12} {'vs raw':>8}  budget")
    for row in rows:
        print(f"  {row.name:<52} {row.rate:>12,.0f} {row.ratio:>8}  {row.verdict}")


def _pin_to_one_core(cpu: int | None) -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[-1] if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return f"pinned to CPU {chosen}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.geo_lookup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, default=DEFAULT_WORLD, help="world file (default: %(default)s)")
    parser.add_argument(
        "--lookups", type=int, default=200_000, help="distinct addresses (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per case, best kept (default: %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="20k lookups, 3 repeats: a smoke run")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last allowed)")
    args = parser.parse_args(argv)
    lookups, repeats = (20_000, 3) if args.quick else (args.lookups, args.repeats)
    pinned = _pin_to_one_core(args.cpu)
    rng = random.Random(20260101)
    world = load_world(args.world)
    with tempfile.TemporaryDirectory(prefix="bench-geo-") as tmp:
        directory = Path(tmp)
        build = _build_rows(world, directory, repeats)
        world_db = build_world_db(world, directory / "world.mmdb")
        print(
            f"geo lookups: {world.source} ({len(world.countries)} countries), {lookups:,} addresses, "
            f"best of {repeats}; Python {sys.version.split()[0]}, maxminddb {maxminddb.__version__} "
            f"({_reader_kind(world_db)}), {pinned}"
        )
        lookups_rows = _lookup_rows(world_db, _client_addresses(world, lookups, rng), repeats)
        stack = _stack_rows(world_db, directory, repeats, rng)
    _print("database build", build)
    _print("simulated clients (world database)", lookups_rows)
    _print("public addresses through the stack", stack)
    missed = [row.name for row in (*build, *lookups_rows, *stack) if row.verdict.startswith("MISSED")]
    if missed:
        print(f"\nbudget missed: {', '.join(missed)}")
        return 1
    print("\nall budgets met")
    return 0


def _reader_kind(path: Path) -> str:
    with maxminddb.open_database(path, maxminddb.MODE_AUTO) as reader:
        return "C extension" if type(reader).__module__ == "maxminddb.extension" else "pure Python"


if __name__ == "__main__":
    sys.exit(main())
