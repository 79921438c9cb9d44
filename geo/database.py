"""The simulated world as a MaxMind DB, so simulated clients are located like real ones.

Every country's loopback block (and its optional real networks) becomes a record in the
GeoIP2 City layout: ``continent``, ``country``, ``registered_country``, ``city`` and
``location``. Any GeoIP2 reader can open the result; :mod:`geo.lookup` stacks it in front
of real databases. The file is cached by the world file's sha256, so a world that did not
change is never rebuilt, and concurrent builders (several edge nodes starting at once)
each write a private temporary file and rename it into place: readers only ever see a
whole database.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from geo import dbfile
from geo.errors import GeoDatabaseError
from geo.world import Country, World

logger = logging.getLogger(__name__)

# Contains "City" so that geoip2's ``Reader.city()`` accepts the file, as it accepts
# GeoIP2-City and GeoLite2-City.
DATABASE_TYPE = "EdgeCDN-World-City"
# Bump when the record layout changes: cached files of an older layout are then ignored.
LAYOUT_VERSION = 1
LANGUAGE = "en"


def world_db_key(world: World) -> str:
    """The cache key of a world's database: its file's sha256 and our record layout."""
    # A world built in code has no file; its repr is deterministic and covers every value.
    digest = world.digest or hashlib.sha256(repr(world).encode()).hexdigest()
    return f"v{LAYOUT_VERSION}-{digest}"


def world_db_path(world: World, cache_dir: Path) -> Path:
    return cache_dir / f"world-{world_db_key(world)}.mmdb"


def build_world_db(world: World, out: Path) -> Path:
    """Write the world's database to ``out`` (atomically) and return ``out``."""
    writer = MMDBWriter(
        ip_version=6,
        # IPv4 networks live in ::/96, as in MaxMind's own databases, so one file
        # answers both IPv4 and IPv6 (a country may list real IPv6 networks).
        ipv4_compatible=True,
        database_type=DATABASE_TYPE,
        languages=[LANGUAGE],
        description={LANGUAGE: f"EdgeCDN simulated world {world.source.name} ({world_db_key(world)})"},
    )
    names = {country.code: country.name for country in world.countries}
    for country in world.countries:
        networks = IPSet([str(network) for network in (country.loopback, *country.cidrs)])
        writer.insert_network(networks, _record(country, names))
    _write_atomically(writer, out)
    return out


def ensure_world_db(world: World, cache_dir: Path) -> Path:
    """The world's database in ``cache_dir``: reused when valid, built when absent or stale."""
    path = world_db_path(world, cache_dir)
    if _is_valid_world_db(path, world):
        logger.debug("geo database %s is up to date", path)
        return path
    logger.info("building the geo database of %s at %s", world.source, path)
    return build_world_db(world, path)


def _record(country: Country, names: dict[str, str]) -> dict[str, Any]:
    registered = country.registered_country or country.code
    return {
        "continent": {"code": country.continent, "names": {LANGUAGE: country.continent_name}},
        "country": {"iso_code": country.code, "names": {LANGUAGE: country.name}},
        "registered_country": {
            "iso_code": registered,
            "names": {LANGUAGE: names.get(registered, registered)},
        },
        "city": {"names": {LANGUAGE: country.city}},
        # The population-weighted centre, the same point the latency model uses, so a
        # client's located position and its modeled RTTs agree.
        "location": {"latitude": float(country.latitude), "longitude": float(country.longitude)},
    }


def _write_atomically(writer: MMDBWriter, out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:
        raise GeoDatabaseError(out, f"cannot write the database: {exc.strerror or exc}") from exc
    os.close(fd)
    try:
        writer.to_db_file(tmp_name)
        os.replace(tmp_name, out)
    except OSError as exc:
        raise GeoDatabaseError(out, f"cannot write the database: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp_name).unlink()


def _is_valid_world_db(path: Path, world: World) -> bool:
    """Whether ``path`` is a whole, sound database of this world (not truncated or damaged,
    not another world's). Read through :mod:`geo.dbfile`, never mapped: a damaged cached
    file must be rebuilt, not crash the C extension or fault under a concurrent writer."""
    try:
        loaded = dbfile.load(path)
        with dbfile.open_reader(loaded, path) as reader:
            metadata = reader.metadata()
            probe = reader.get(world.countries[0].client_address())
    except (GeoDatabaseError, *dbfile.RECORD_ERRORS):
        return False  # absent, truncated by a crash, or not a database at all: rebuild
    if loaded.verdict is None or not loaded.verdict.sound or not isinstance(probe, dict):
        return False
    country = probe.get("country")
    return (
        metadata.database_type == DATABASE_TYPE
        and world_db_key(world) in metadata.description.get(LANGUAGE, "")
        and isinstance(country, dict)
        and country.get("iso_code") == world.countries[0].code
    )
