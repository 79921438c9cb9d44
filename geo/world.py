"""The world model: regions with their PoPs, simulated countries, latency parameters.

A world file (TOML, documented in ``docs/world.md``) is loaded once into a frozen
:class:`World`. Every simulated country owns a loopback block ``127.N.0.0/16``: a
simulated client binds its socket to an address there, and the geo database built from
the world (:mod:`geo.database`) maps that address back to the country, so clients are
located by their real source address, exactly as real clients are.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias, TypeVar

from geo.errors import (
    InvalidValueError,
    UnknownCountryError,
    UnknownRegionError,
    WorldFileError,
)
from geo.params import LATENCY_MODELS, LatencyParams
from geo.toml_reader import TableReader
from runtime.durations import parse_duration

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")
K = TypeVar("K")

# Continent codes as GeoIP2 uses them, with the English names it stores.
CONTINENTS: MappingProxyType[str, str] = MappingProxyType(
    {
        "AF": "Africa",
        "AN": "Antarctica",
        "AS": "Asia",
        "EU": "Europe",
        "NA": "North America",
        "OC": "Oceania",
        "SA": "South America",
    }
)

_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_REGION_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
# Host indexes of a /16, leaving out the network (.0.0) and broadcast (.255.255)
# addresses so an address is valid under either convention.
MAX_CLIENT_INDEX = 2**16 - 2


def check_coordinates(latitude: float, longitude: float) -> None:
    """Raise InvalidValueError unless both are finite degrees within range."""
    if not (math.isfinite(latitude) and -90 <= latitude <= 90):
        raise InvalidValueError(field="latitude", reason=f"must be between -90 and 90 (got {latitude})")
    if not (math.isfinite(longitude) and -180 <= longitude <= 180):
        raise InvalidValueError(field="longitude", reason=f"must be between -180 and 180 (got {longitude})")


MAX_NODE_WORKERS = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """A cloud region and its point of presence (the city where its edge nodes stand)."""

    id: str
    pop: str
    latitude: float
    longitude: float
    edge_nodes: int = 1
    # Processes of each edge node (edge-node --workers): one in a simulated world, where
    # many nodes share one machine's cores.
    node_workers: int = 1
    gateways: int = 1
    # Countries for which this is the home region (a routing preference, not a rule).
    serves: tuple[str, ...] = ()
    # A scenario for the region's simulated sensors: "AT,FOR" (durations after the world
    # starts), a heat wave that lifts temperatures over 30 °C; "" for none.
    heat_wave: str = ""

    def __post_init__(self) -> None:
        if not _REGION_ID.match(self.id):
            raise InvalidValueError(
                field="id",
                reason=f"must be lower-case words joined by '-' like ap-northeast-2 (got {self.id!r})",
            )
        if not self.pop.strip():
            raise InvalidValueError(field="pop", reason="must name the PoP's city")
        check_coordinates(self.latitude, self.longitude)
        if self.edge_nodes < 0:
            raise InvalidValueError(
                field="edge_nodes", reason=f"must not be negative (got {self.edge_nodes})"
            )
        if self.gateways < 0:
            raise InvalidValueError(field="gateways", reason=f"must not be negative (got {self.gateways})")
        if not 1 <= self.node_workers <= MAX_NODE_WORKERS:
            reason = f"must be within [1, {MAX_NODE_WORKERS}] (got {self.node_workers})"
            raise InvalidValueError(field="node_workers", reason=reason)
        if self.heat_wave:
            _check_heat_wave(self.heat_wave)
        for index, code in enumerate(self.serves):
            if not _COUNTRY_CODE.match(code):
                raise InvalidValueError(
                    field=f"serves[{index}]",
                    reason=f"must be an ISO 3166-1 alpha-2 code like KR (got {code!r})",
                )
        if len(set(self.serves)) != len(self.serves):
            raise InvalidValueError(field="serves", reason="lists a country twice")


@dataclass(frozen=True, slots=True, kw_only=True)
class Country:
    """A simulated country: where its people live and which addresses its clients use."""

    code: str
    name: str
    continent: str
    # The city the geo database reports for the country's clients.
    city: str
    # Population-weighted centre: where the country's clients are, on average.
    latitude: float
    longitude: float
    loopback: ipaddress.IPv4Network
    # Real networks to locate in this country as well (optional; for stacking tests
    # and for worlds that mirror real address plans).
    cidrs: tuple[IPNetwork, ...] = ()
    # The country the address blocks are registered to, written as GeoIP2's
    # ``registered_country``; lookups never use it, the represented ``country`` wins.
    registered_country: str = ""

    def __post_init__(self) -> None:
        if not _COUNTRY_CODE.match(self.code):
            raise InvalidValueError(
                field="code",
                reason=f"must be an ISO 3166-1 alpha-2 code in upper case like KR (got {self.code!r})",
            )
        if not self.name.strip():
            raise InvalidValueError(field="name", reason="must not be empty")
        if self.continent not in CONTINENTS:
            raise InvalidValueError(
                field="continent", reason=f"must be one of {', '.join(CONTINENTS)} (got {self.continent!r})"
            )
        if not self.city.strip():
            raise InvalidValueError(field="city", reason="must not be empty")
        check_coordinates(self.latitude, self.longitude)
        _check_loopback(self.loopback)
        for index, network in enumerate(self.cidrs):
            if network.is_loopback:
                raise InvalidValueError(
                    field=f"cidrs[{index}]", reason=f"{network} is loopback; use the loopback key for that"
                )
        if self.registered_country and not _COUNTRY_CODE.match(self.registered_country):
            raise InvalidValueError(
                field="registered_country",
                reason=f"must be an ISO 3166-1 alpha-2 code like KR (got {self.registered_country!r})",
            )

    @property
    def continent_name(self) -> str:
        return CONTINENTS[self.continent]

    def client_address(self, index: int = 1) -> str:
        """The ``index``-th loopback address of this country (1 .. 65534), e.g. 127.8.0.1."""
        if not 1 <= index <= MAX_CLIENT_INDEX:
            raise InvalidValueError(
                field="index", reason=f"must be between 1 and {MAX_CLIENT_INDEX} (got {index})"
            )
        return str(self.loopback.network_address + index)


def _check_loopback(network: ipaddress.IPv4Network) -> None:
    octet = network.network_address.packed[1]
    if network.prefixlen != 16 or not network.subnet_of(_LOOPBACK) or not 1 <= octet <= 254:
        raise InvalidValueError(
            field="loopback", reason=f"must be a block 127.N.0.0/16 with N from 1 to 254 (got {network})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class World:
    """A whole simulated planet, as loaded from one world file."""

    seed: int
    regions: tuple[Region, ...]
    countries: tuple[Country, ...]
    latency: LatencyParams = field(default_factory=LatencyParams)
    source: Path = Path("<memory>")
    # sha256 of the file's bytes: the geo database cache key, and a world's identity.
    digest: str = ""
    _regions_by_id: MappingProxyType[str, Region] = field(init=False, repr=False, compare=False)
    _countries_by_code: MappingProxyType[str, Country] = field(init=False, repr=False, compare=False)
    _home_regions: MappingProxyType[str, Region] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.regions:
            raise InvalidValueError(field="regions", reason="the world needs at least one region")
        if not self.countries:
            raise InvalidValueError(field="countries", reason="the world needs at least one country")
        regions = _unique(self.regions, lambda r: r.id, "regions", "id")
        countries = _unique(self.countries, lambda c: c.code, "countries", "code")
        _unique(self.countries, lambda c: c.loopback, "countries", "loopback")
        _check_disjoint(self.countries)
        homes: dict[str, Region] = {}
        for r_index, region in enumerate(self.regions):
            for s_index, code in enumerate(region.serves):
                key = f"regions[{r_index}].serves[{s_index}]"
                if code not in countries:
                    raise InvalidValueError(
                        field=key, reason=f"country {code} is not defined in [[countries]]"
                    )
                if code in homes:
                    raise InvalidValueError(
                        field=key, reason=f"country {code} is already served by {homes[code].id}"
                    )
                homes[code] = region
        object.__setattr__(self, "_regions_by_id", MappingProxyType(regions))
        object.__setattr__(self, "_countries_by_code", MappingProxyType(countries))
        object.__setattr__(self, "_home_regions", MappingProxyType(homes))

    def region(self, region_id: str) -> Region:
        try:
            return self._regions_by_id[region_id]
        except KeyError:
            raise UnknownRegionError(region_id=region_id, known=tuple(self._regions_by_id)) from None

    def country(self, code: str) -> Country:
        try:
            return self._countries_by_code[code.upper()]
        except KeyError:
            raise UnknownCountryError(code=code, known=tuple(self._countries_by_code)) from None

    def home_region(self, code: str) -> Region | None:
        """The region whose ``serves`` lists country ``code``, if any."""
        return self._home_regions.get(self.country(code).code)


def _unique(items: tuple[T, ...], key_of: Callable[[T], K], table: str, name: str) -> dict[K, T]:
    seen: dict[K, T] = {}
    for index, item in enumerate(items):
        key = key_of(item)
        if key in seen:
            raise InvalidValueError(field=f"{table}[{index}].{name}", reason=f"{key} is used twice")
        seen[key] = item
    return seen


def _check_disjoint(countries: tuple[Country, ...]) -> None:
    """No address may belong to two countries: the database could not say which."""
    owned = sorted(
        ((network, index) for index, c in enumerate(countries) for network in (c.loopback, *c.cidrs)),
        key=lambda item: (item[0].version, int(item[0].network_address)),
    )
    previous: tuple[IPNetwork, int] | None = None
    for network, index in owned:
        if (
            previous is not None
            and previous[0].version == network.version
            and int(network.network_address) <= int(previous[0].broadcast_address)
        ):
            other = countries[previous[1]].code
            raise InvalidValueError(
                field=f"countries[{index}]",
                reason=f"network {network} overlaps {previous[0]} of {other}",
            )
        if (
            previous is None
            or previous[0].version != network.version
            or int(network.broadcast_address) > int(previous[0].broadcast_address)
        ):
            previous = (network, index)


def load_world(path: Path) -> World:
    """Read and validate a world file; every problem is a WorldFileError naming its key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorldFileError(path, "", f"cannot read the world file: {exc.strerror or exc}") from exc
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WorldFileError(path, "", f"is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise WorldFileError(path, "", f"is not valid TOML: {exc}") from exc
    root = TableReader(document, source=path)
    seed = root.integer("seed")
    latency = _latency(root.table("latency", {}))
    regions = tuple(_region(reader) for reader in root.tables("regions"))
    countries = tuple(_country(reader) for reader in root.tables("countries"))
    root.reject_unknown()
    return _build(
        root,
        "",
        World,
        seed=seed,
        regions=regions,
        countries=countries,
        latency=latency,
        source=path,
        digest=hashlib.sha256(data).hexdigest(),
    )


def _build(reader: TableReader, prefix: str, cls: Callable[..., T], **values: Any) -> T:
    """Construct ``cls``; its own validation errors get the key of the table in the file."""
    try:
        return cls(**values)
    except InvalidValueError as exc:
        # Validation of a nested table names a field relative to it; a World names
        # fields relative to the file's root, so it has no prefix of its own.
        raise WorldFileError(reader.source, f"{prefix}{exc.field}", exc.reason) from exc


def _latency(reader: TableReader) -> LatencyParams:
    defaults = LatencyParams()
    model = reader.string("model", defaults.model)
    if model not in LATENCY_MODELS:
        reader.fail("model", f"must be one of {', '.join(LATENCY_MODELS)} (got {model!r})")
    backbone = reader.string("backbone", "")
    params = _build(
        reader,
        reader.field_prefix(),
        LatencyParams,
        model="backbone" if model == "backbone" else "great-circle",
        # Relative to the world file's folder, like every path a world file names.
        backbone=reader.source.parent / backbone if backbone else None,
        fiber_km_per_ms=reader.number("fiber_km_per_ms", defaults.fiber_km_per_ms),
        path_inflation=reader.number("path_inflation", defaults.path_inflation),
        per_hop_base_ms=reader.number("per_hop_base_ms", defaults.per_hop_base_ms),
        jitter_ms=reader.number("jitter_ms", defaults.jitter_ms),
    )
    reader.reject_unknown()
    return params


def _check_heat_wave(text: str) -> None:
    at, comma, lasting = text.partition(",")
    try:
        if not comma or parse_duration(at) < 0 or parse_duration(lasting) <= 0:
            raise ValueError("needs AT,FOR")
    except ValueError:
        raise InvalidValueError(
            field="heat_wave", reason=f'must be AT,FOR durations like "30s,10m" (got {text!r})'
        ) from None


def _region(reader: TableReader) -> Region:
    region = _build(
        reader,
        reader.field_prefix(),
        Region,
        id=reader.string("id"),
        pop=reader.string("pop"),
        latitude=reader.number("latitude"),
        longitude=reader.number("longitude"),
        edge_nodes=reader.integer("edge_nodes", 1),
        node_workers=reader.integer("node_workers", 1),
        gateways=reader.integer("gateways", 1),
        serves=reader.strings("serves", ()),
        heat_wave=reader.string("heat_wave", ""),
    )
    reader.reject_unknown()
    return region


def _country(reader: TableReader) -> Country:
    loopback = _network(reader, "loopback", reader.string("loopback"))
    if not isinstance(loopback, ipaddress.IPv4Network):
        reader.fail("loopback", f"must be an IPv4 block 127.N.0.0/16 (got {loopback})")
    cidrs = tuple(
        _network(reader, f"cidrs[{index}]", text) for index, text in enumerate(reader.strings("cidrs", ()))
    )
    country = _build(
        reader,
        reader.field_prefix(),
        Country,
        code=reader.string("code"),
        name=reader.string("name"),
        continent=reader.string("continent"),
        city=reader.string("city"),
        latitude=reader.number("latitude"),
        longitude=reader.number("longitude"),
        loopback=loopback,
        cidrs=cidrs,
        registered_country=reader.string("registered_country", ""),
    )
    reader.reject_unknown()
    return country


def _network(reader: TableReader, name: str, text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        reader.fail(name, f"is not a network in CIDR notation: {exc}")
