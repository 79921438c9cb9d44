"""IP address to location, through a stack of MaxMind databases and an LRU cache.

The stack is asked in order and the first database holding the address answers: the
simulated world first (loopback blocks of simulated countries), then any real GeoIP2 or
GeoLite2 City or Country database for public addresses. The answer is the represented
``country`` (where the user is), never ``registered_country`` (who holds the block),
which is the field GeoIP2 documents for locating users. An address in no database is
:data:`UNKNOWN`, an explicit value rather than an exception, because "we do not know"
is a normal answer for a CDN (private ranges, fresh allocations).

Databases are opened with the C extension (``MODE_AUTO``) and checked at open, so a
missing, corrupt or wrong-type file fails at start-up naming the file, not on the first
request.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import maxminddb

from geo.database import ensure_world_db
from geo.errors import GeoDatabaseError, GeoError, InvalidAddressError
from geo.world import World

# Record layouts we understand. Other MaxMind products (ASN, ISP, Anonymous-IP, ...)
# hold no location: stacking one would answer "unknown" for addresses it knows.
ACCEPTED_TYPE_WORDS = ("City", "Country")
DEFAULT_CACHE_SIZE = 65_536
_LANGUAGE = "en"
_IPV4_MAPPED = ("::ffff:", "::FFFF:")
_IPV4_MAPPED_LEN = len("::ffff:")
# The C reader parses with getaddrinfo, which also takes legacy forms: "127.010.0.1" is
# octal (127.8.0.1) and "127.1" is 127.0.0.1. Addresses arrive from sockets and headers;
# only the canonical dotted quad may be believed, or a crafted header picks its country.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_STRICT_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where an address is, and which database said so; all ``None`` when unknown."""

    country: str | None = None  # ISO 3166-1 alpha-2, e.g. "KR"
    country_name: str | None = None
    continent: str | None = None  # two-letter code, e.g. "AS"
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    source: str | None = None  # path of the database that answered

    @property
    def known(self) -> bool:
        return self.source is not None

    def as_dict(self) -> dict[str, str | float | None]:
        return {
            "country": self.country,
            "country_name": self.country_name,
            "continent": self.continent,
            "city": self.city,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "source": self.source,
        }


UNKNOWN = Location()


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseInfo:
    """What one opened database is."""

    path: Path
    database_type: str
    ip_version: int
    build_epoch: int


class _Database:
    """One open MaxMind DB that can turn its records into Locations."""

    __slots__ = ("_get", "_location", "_reader", "info", "ipv4_only")

    def __init__(self, path: Path) -> None:
        if path.is_dir():
            raise GeoDatabaseError(path, "is a directory, not a database file")
        try:
            # The C extension (libmaxminddb over mmap), never the silent pure-Python fallback
            # of MODE_AUTO, which is an order of magnitude slower.
            reader = maxminddb.open_database(path, maxminddb.MODE_MMAP_EXT)
        except FileNotFoundError as exc:
            raise GeoDatabaseError(path, "no such file") from exc
        except OSError as exc:
            raise GeoDatabaseError(path, f"cannot open: {exc.strerror or exc}") from exc
        except ValueError as exc:
            if "extension" in str(exc):
                raise GeoDatabaseError(
                    path, "cannot be read: maxminddb's C extension is missing (reinstall maxminddb)"
                ) from exc
            raise GeoDatabaseError(
                path, "is not a valid MaxMind DB file (corrupt, truncated or another format)"
            ) from exc
        except maxminddb.InvalidDatabaseError as exc:
            # libmaxminddb's own message repeats the path; ours says it once.
            raise GeoDatabaseError(
                path, "is not a valid MaxMind DB file (corrupt, truncated or another format)"
            ) from exc
        metadata = reader.metadata()
        if not any(word in metadata.database_type for word in ACCEPTED_TYPE_WORDS):
            reader.close()
            raise GeoDatabaseError(
                path,
                f"is a {metadata.database_type} database; expected a GeoIP2 or GeoLite2 City or Country one",
            )
        self._reader = reader
        self._get = reader.get
        self.info = DatabaseInfo(
            path=path,
            database_type=metadata.database_type,
            ip_version=metadata.ip_version,
            build_epoch=metadata.build_epoch,
        )
        self.ipv4_only = metadata.ip_version == 4
        self._location = _LocationInterner(str(path))

    def locate(self, address: str) -> Location | None:
        if self.ipv4_only and ":" in address:
            return None  # an IPv6 address cannot be in an IPv4-only database
        try:
            record = self._get(address)
        except maxminddb.InvalidDatabaseError as exc:
            # The header was sound but the data section is not: a damaged file.
            raise GeoDatabaseError(self.info.path, f"corrupt data: {exc}") from exc
        if record is None:
            return None
        if not isinstance(record, dict):
            raise GeoDatabaseError(self.info.path, f"record for {address} is not a map")
        return self._location(record)

    def close(self) -> None:
        self._reader.close()


_EMPTY: dict[str, Any] = {}
# Bound on the distinct Locations one database keeps for reuse; a GeoLite2-City file
# has about 150k distinct places, the simulated world one per country.
_MAX_INTERNED = 65_536


class _LocationInterner:
    """Turns records into Locations, reusing one instance per distinct place.

    Building a frozen dataclass costs more than a dict lookup (~1.4 us against ~0.2 us
    here), and a database has far fewer places than addresses, so interning makes
    uncached lookups about a quarter faster and lets the LRU cache share instances.
    """

    __slots__ = ("_known", "_source")

    def __init__(self, source: str) -> None:
        self._source = source
        self._known: dict[tuple[Any, ...], Location] = {}

    def __call__(self, record: dict[str, Any]) -> Location:
        country = record.get("country") or _EMPTY
        city = record.get("city") or _EMPTY
        position = record.get("location") or _EMPTY
        key = (
            country.get("iso_code"),
            (country.get("names") or _EMPTY).get(_LANGUAGE),
            (record.get("continent") or _EMPTY).get("code"),
            (city.get("names") or _EMPTY).get(_LANGUAGE),
            position.get("latitude"),
            position.get("longitude"),
        )
        location = self._known.get(key)
        if location is None:
            location = Location(
                country=key[0],
                country_name=key[1],
                continent=key[2],
                city=key[3],
                latitude=key[4],
                longitude=key[5],
                source=self._source,
            )
            if len(self._known) >= _MAX_INTERNED:
                self._known.clear()  # crude but bounded; refills with the places in use
            self._known[key] = location
        return location


class GeoLocator:
    """Locates addresses through a stack of databases, first match wins.

    Thread-safe: the C reader and :func:`functools.lru_cache` both are.
    """

    def __init__(self, databases: Sequence[Path], *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if not databases:
            raise GeoError("a GeoLocator needs at least one database")
        if cache_size < 0:
            raise GeoError(f"cache_size must not be negative (got {cache_size})")
        opened: list[_Database] = []
        try:
            for path in databases:
                opened.append(_Database(Path(path)))  # noqa: PERF401 - close what opened if one fails
        except GeoDatabaseError:
            for database in opened:
                database.close()
            raise
        self._databases = tuple(opened)
        self._closed = False
        self._cached = functools.lru_cache(maxsize=cache_size)(self._locate_uncached)

    @classmethod
    def for_world(
        cls,
        world: World,
        *,
        cache_dir: Path,
        extra_databases: Iterable[Path] = (),
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> Self:
        """The world's own database (built if needed) first, then ``extra_databases``."""
        return cls([ensure_world_db(world, cache_dir), *extra_databases], cache_size=cache_size)

    @property
    def databases(self) -> tuple[DatabaseInfo, ...]:
        return tuple(database.info for database in self._databases)

    def locate(self, ip: str) -> Location:
        """Where ``ip`` is; :data:`UNKNOWN` when no database holds it.

        Raises InvalidAddressError for a string that is not an IP address.
        """
        return self._cached(ip)

    def locate_uncached(self, ip: str) -> Location:
        """Like :meth:`locate`, bypassing (and not filling) the cache."""
        return self._locate_uncached(ip)

    def _locate_uncached(self, ip: str) -> Location:
        # Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; the databases index
        # IPv4 under ::/96, where that form would miss.
        address = ip[_IPV4_MAPPED_LEN:] if ip.startswith(_IPV4_MAPPED) and "." in ip else ip
        if self._closed:
            raise GeoError("the geo locator is closed")
        if ":" in address:
            if "%" in address:  # a zone id (fe80::1%eth0) names a link, not a place
                raise InvalidAddressError(address=ip)
        elif _STRICT_IPV4.fullmatch(address) is None:
            raise InvalidAddressError(address=ip)
        try:
            for database in self._databases:
                location = database.locate(address)
                if location is not None:
                    return location
        except ValueError as exc:
            raise InvalidAddressError(address=ip) from exc
        return UNKNOWN

    def cache_info(self) -> functools._CacheInfo:
        return self._cached.cache_info()

    def close(self) -> None:
        self._closed = True
        self._cached.cache_clear()
        for database in self._databases:
            database.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
