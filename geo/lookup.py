"""IP address to location, through a stack of MaxMind databases and an LRU cache.

The stack is asked in order and the first database holding the address answers: the
simulated world first (loopback blocks of simulated countries), then any real GeoIP2 or
GeoLite2 City or Country database for public addresses. The answer is the represented
``country`` (where the user is), never ``registered_country`` (who holds the block),
which is the field GeoIP2 documents for locating users. An address in no database is
:data:`UNKNOWN`, an explicit value rather than an exception, because "we do not know"
is a normal answer for a CDN (private ranges, fresh allocations).

Databases are checked at open, so a missing, unreadable or wrong-type file fails at
start-up naming the file, not on the first request. At run time nothing a database file
does can take a lookup down (:mod:`geo.dbfile` reads each file whole into a private copy
and verifies its records before the C extension sees them):

- a record that cannot be decoded, or is not shaped like a GeoIP2 record, is
  :data:`UNKNOWN`; ``on_bad_record`` is told of each one, and each database logs the
  first once;
- the files are checked (one ``stat`` each) at most every ``reload_interval_s``, from a
  lookup; one that was replaced (an atomic rename, or rewritten in place) is read and
  verified on a background thread and swapped in whole, with a fresh cache; one that
  cannot be read (truncated, half-written, removed) leaves the database in use serving.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from geo import dbfile
from geo.database import ensure_world_db
from geo.errors import GeoDatabaseError, GeoError, InvalidAddressError
from geo.reload import Reloader
from geo.world import World

logger = logging.getLogger(__name__)

# Record layouts we understand. Other MaxMind products (ASN, ISP, Anonymous-IP, ...)
# hold no location: stacking one would answer "unknown" for addresses it knows.
ACCEPTED_TYPE_WORDS = ("City", "Country")
DEFAULT_CACHE_SIZE = 65_536
# How often the files are checked for replacement: one stat each, from a lookup.
DEFAULT_RELOAD_INTERVAL_S = 1.0
# Files smaller than this are verified before the first lookup (the world's: a few kB,
# a millisecond); bigger ones (a GeoLite2-City: seconds) on a thread while they serve.
SYNC_VERIFY_BYTES = 4 * 1024 * 1024
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


class _BadRecordError(Exception):
    """A record decoded, but not into a GeoIP2 record (e.g. a country that is not a map)."""


def _ignore(_path: str) -> None:
    return None


class _Database:
    """One verified, privately held MaxMind DB that turns its records into Locations."""

    __slots__ = (
        "_closed", "_get", "_location", "_on_bad_record", "_reader", "_warned",
        "identity", "info", "ipv4_only", "path", "verdict",
    )  # fmt: skip

    def __init__(self, path: Path, *, on_bad_record: Callable[[str], None], verify_below: int | None) -> None:
        loaded = dbfile.load(path, verify_below=verify_below)
        reader = dbfile.open_reader(loaded, path)
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
        self.path = path
        self.identity = loaded.identity
        self.verdict = loaded.verdict
        self.ipv4_only = metadata.ip_version == 4
        self._location = _LocationInterner(str(path))
        self._on_bad_record = on_bad_record
        self._warned = False
        self._closed = False
        if loaded.verdict is None:
            # A big file: serve at once from the pure-Python reader, verify on a thread, and
            # move to the C extension when every record is sound.
            threading.Thread(target=self._verify, args=(loaded,), name="geo-verify", daemon=True).start()
        elif not loaded.verdict.sound:
            self._warn_unsound(loaded.verdict)

    def _verify(self, loaded: dbfile.LoadedFile) -> None:
        path = self.info.path
        try:
            verdict = dbfile.verify(loaded.data, path)
            self.verdict = verdict
            if not verdict.sound:
                self._warn_unsound(verdict)
                return
            reader = dbfile.open_reader(dataclasses.replace(loaded, verdict=verdict), path)
        except GeoDatabaseError as exc:
            logger.warning("geo database %s: %s; kept on the pure-Python reader", path, exc.reason)
            return
        if self._closed:
            reader.close()
            return
        self._reader, self._get = reader, reader.get  # the pure-Python reader goes with its last lookup
        logger.info("geo database %s: %d records verified; read by the C extension", path, verdict.records)

    def _warn_unsound(self, verdict: dbfile.Verdict) -> None:
        logger.warning(
            "geo database %s: %d of %d records cannot be read (first: %s); addresses on them are "
            "unknown locations, and the file is read by the slower pure-Python reader until it is replaced",
            self.info.path, verdict.bad, verdict.records, verdict.first_error,
        )  # fmt: skip

    def locate(self, address: str) -> Location | None:
        if self.ipv4_only and ":" in address:
            return None  # an IPv6 address cannot be in an IPv4-only database
        try:
            record = self._get(address)
            if record is None:
                return None
            if not isinstance(record, dict):
                raise _BadRecordError(f"the record is a {type(record).__name__}, not a map")
            return self._location(record)
        except (*dbfile.RECORD_ERRORS, AttributeError, _BadRecordError) as exc:
            # The address was checked before: what fails here is the file's data.
            self._bad_record(address, exc)
            return UNKNOWN

    def _bad_record(self, address: str, exc: Exception) -> None:
        if not self._warned:
            self._warned = True  # once per database: a bad record is usually met again and again
            logger.warning(
                "geo database %s: the record for %s cannot be read (%s); it and any other bad "
                "record answer as an unknown location",
                self.info.path, address, exc,
            )  # fmt: skip
        self._on_bad_record(str(self.info.path))

    def close(self) -> None:
        self._closed = True
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
            _check_place(key)
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


def _check_place(key: tuple[Any, ...]) -> None:
    """A new place's values have the types GeoIP2 gives them (headers are made of them)."""
    for value in key[:4]:
        if value is not None and not isinstance(value, str):
            raise _BadRecordError(f"{value!r} is not a string")
    for value in key[4:]:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _BadRecordError(f"{value!r} is not a coordinate")


def _address(ip: str) -> str:
    """The form the databases are asked in; InvalidAddressError for anything but an address."""
    # Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; the databases index
    # IPv4 under ::/96, where that form would miss.
    address = ip[_IPV4_MAPPED_LEN:] if ip.startswith(_IPV4_MAPPED) and "." in ip else ip
    if ":" in address:
        if "%" in address:  # a zone id (fe80::1%eth0) names a link, not a place
            raise InvalidAddressError(address=ip)
        try:
            # Checked here, so that whatever a database raises later is about its data.
            ipaddress.IPv6Address(address)
        except ValueError as exc:
            raise InvalidAddressError(address=ip) from exc
    elif _STRICT_IPV4.fullmatch(address) is None:
        raise InvalidAddressError(address=ip)
    return address


def _locate_in(databases: tuple[_Database, ...], ip: str) -> Location:
    address = _address(ip)
    for database in databases:
        location = database.locate(address)
        if location is not None:
            return location
    return UNKNOWN


class _Stack:
    """The databases in use and the cache of their answers: replaced whole on a reload, so
    a lookup sees one consistent stack and no answer of a replaced file outlives it."""

    __slots__ = ("cached", "databases", "locate")

    def __init__(self, databases: tuple[_Database, ...], cache_size: int) -> None:
        self.databases = databases
        # A partial, not a bound method: no reference cycle, so a replaced stack (and the
        # copy of its files) is freed as soon as its last lookup ends, not at the next GC.
        self.locate = functools.partial(_locate_in, databases)
        self.cached = functools.lru_cache(maxsize=cache_size)(self.locate)


class GeoLocator:
    """Locates addresses through a stack of databases, first match wins.

    Thread-safe: the C reader and :func:`functools.lru_cache` both are, and a reload
    replaces the whole stack with one assignment. ``on_bad_record(path)`` is called for
    every lookup that met an unreadable record, ``on_reload(path, result)`` (``"ok"`` or
    ``"failed"``) for every attempt to take up a changed file, from the reload thread.
    """

    def __init__(
        self,
        databases: Sequence[Path],
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        reload_interval_s: float = DEFAULT_RELOAD_INTERVAL_S,
        on_bad_record: Callable[[str], None] | None = None,
        on_reload: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not databases:
            raise GeoError("a GeoLocator needs at least one database")
        if cache_size < 0:
            raise GeoError(f"cache_size must not be negative (got {cache_size})")
        if not reload_interval_s > 0:
            raise GeoError(f"reload_interval_s must be positive (got {reload_interval_s})")
        self._on_bad_record = _ignore if on_bad_record is None else on_bad_record
        self._cache_size = cache_size
        opened: list[_Database] = []
        try:
            for path in databases:
                database = _Database(
                    Path(path), on_bad_record=self._on_bad_record, verify_below=SYNC_VERIFY_BYTES
                )
                opened.append(database)  # one by one: close what opened if one fails
        except GeoDatabaseError:
            for database in opened:
                database.close()
            raise
        self._stack = _Stack(tuple(opened), cache_size)
        self._closed = False
        self._clock = clock
        self._interval = reload_interval_s
        self._next_check = clock() + reload_interval_s
        self._reloader = Reloader(
            current=lambda: self._stack.databases,
            open_file=self._open,
            install=self._install,
            on_reload=on_reload,
        )

    @classmethod
    def for_world(
        cls,
        world: World,
        *,
        cache_dir: Path,
        extra_databases: Iterable[Path] = (),
        cache_size: int = DEFAULT_CACHE_SIZE,
        on_bad_record: Callable[[str], None] | None = None,
        on_reload: Callable[[str, str], None] | None = None,
    ) -> Self:
        """The world's own database (built if needed) first, then ``extra_databases``."""
        return cls(
            [ensure_world_db(world, cache_dir), *extra_databases],
            cache_size=cache_size,
            on_bad_record=on_bad_record,
            on_reload=on_reload,
        )

    @property
    def databases(self) -> tuple[DatabaseInfo, ...]:
        return tuple(database.info for database in self._stack.databases)

    def locate(self, ip: str) -> Location:
        """Where ``ip`` is; :data:`UNKNOWN` when no database holds it (or its record is bad).

        Raises InvalidAddressError for a string that is not an IP address.
        """
        if self._closed:
            raise GeoError("the geo locator is closed")
        if self._clock() >= self._next_check:
            self._next_check = self._clock() + self._interval
            self._reloader.check(wait=False)
        return self._stack.cached(ip)

    def locate_uncached(self, ip: str) -> Location:
        """Like :meth:`locate`, bypassing (and not filling) the cache."""
        if self._closed:
            raise GeoError("the geo locator is closed")
        return self._stack.locate(ip)

    def refresh(self) -> bool:
        """Check the files now and take up any that changed, before returning; whether the
        stack changed. Lookups do this by themselves, in the background, every interval."""
        self._next_check = self._clock() + self._interval
        return self._reloader.check(wait=True)

    def _install(self, databases: tuple[_Database, ...]) -> None:
        # One assignment: a lookup uses the old stack or the new one, never a mix. The old
        # readers are not closed under a lookup that may still use them; they go with it.
        self._stack = _Stack(databases, self._cache_size)

    def _open(self, path: Path) -> _Database:
        # On the reload thread: verified whole before it serves.
        return _Database(path, on_bad_record=self._on_bad_record, verify_below=None)

    def cache_info(self) -> functools._CacheInfo:
        return self._stack.cached.cache_info()

    def close(self) -> None:
        self._closed = True
        self._reloader.closed = True
        self._stack.cached.cache_clear()
        for database in self._stack.databases:
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
