"""The backbone of the simulated Internet as data: metro hubs, links, and the model's constants.

A backbone file (TOML, ``deploy/local/backbone.toml``, documented in ``docs/world.md``)
lists hubs (metros with coordinates and a continent), links between them (terrestrial
routes and submarine cable systems, each with its published length or none, when the
great circle times the kind's route factor stands in), and the ``[model]`` constants that
turn a path into a round-trip time. :func:`load_backbone` reads and validates one file into
a frozen :class:`Backbone`; :mod:`geo.backbone_paths` finds the paths.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from geo.errors import InvalidValueError, WorldFileError
from geo.params import SPEED_OF_LIGHT_KM_PER_MS
from geo.toml_reader import TableReader
from geo.world import CONTINENTS, check_coordinates

__all__ = [
    "DEFAULT_BACKBONE",
    "EARTH_RADIUS_KM",
    "Backbone",
    "BackboneConstants",
    "Hub",
    "Link",
    "LinkKind",
    "great_circle_km",
    "load_backbone",
]

# The backbone a world uses unless its [latency] table names another.
DEFAULT_BACKBONE = Path(__file__).resolve().parents[1] / "deploy" / "local" / "backbone.toml"

LinkKind = Literal["terrestrial", "submarine"]
_KINDS: tuple[LinkKind, ...] = ("terrestrial", "submarine")
_HUB_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Mean Earth radius (IUGG); the haversine formula assumes a sphere, which is within
# 0.5% of the ellipsoid: far below the spread of real Internet paths.
EARTH_RADIUS_KM = 6371.0088


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees (haversine).

    ``geo.latency.haversine_km`` is this function; it lives here, below the latency model.
    """
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    # Rounding can push ``a`` a hair outside [0, 1] for antipodal points; asin would fail.
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, a))))


@dataclass(frozen=True, slots=True, kw_only=True)
class Hub:
    """A metro where networks meet: traffic enters, leaves and changes links here."""

    id: str
    city: str
    continent: str
    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        if not _HUB_ID.match(self.id):
            raise InvalidValueError(
                field="id", reason=f"must be lower-case words joined by '-' like hong-kong (got {self.id!r})"
            )
        if not self.city.strip():
            raise InvalidValueError(field="city", reason="must name the hub's city")
        if self.continent not in CONTINENTS:
            raise InvalidValueError(
                field="continent", reason=f"must be one of {', '.join(CONTINENTS)} (got {self.continent!r})"
            )
        check_coordinates(self.latitude, self.longitude)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A terrestrial route or submarine system between two hubs, usable both ways."""

    a: str
    b: str
    kind: LinkKind
    # The published length of the route; None: great circle x the kind's route factor.
    km: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise InvalidValueError(
                field="b", reason=f"a link must join two different hubs (got {self.a} twice)"
            )
        if self.kind not in _KINDS:
            raise InvalidValueError(
                field="kind", reason=f"must be one of {', '.join(_KINDS)} (got {self.kind!r})"
            )
        if self.km is not None and not (math.isfinite(self.km) and self.km > 0):
            raise InvalidValueError(field="km", reason=f"must be a positive length (got {self.km})")

    @property
    def label(self) -> str:
        return f"{self.a} - {self.b}" + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class BackboneConstants:
    """How a path becomes a round-trip time; the backbone file's ``[model]`` table."""

    fiber_km_per_ms: float = 204.2
    # Every round trip pays it: the end hosts' stacks and the first and last metres.
    base_ms: float = 4.0
    access_route_factor: float = 1.5
    terrestrial_route_factor: float = 1.3
    submarine_route_factor: float = 1.15
    entry_hubs: int = 3
    # Round-trip cost of passing through a hub, by the hub's continent.
    hop_ms: MappingProxyType[str, float] = field(
        default_factory=lambda: MappingProxyType(dict.fromkeys(CONTINENTS, 2.0))
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fiber_km_per_ms) and 0 < self.fiber_km_per_ms <= SPEED_OF_LIGHT_KM_PER_MS):
            raise InvalidValueError(
                field="fiber_km_per_ms",
                reason=(
                    f"must be above 0 and at most the speed of light in vacuum (got {self.fiber_km_per_ms})"
                ),
            )
        for name in ("access_route_factor", "terrestrial_route_factor", "submarine_route_factor"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 1):
                raise InvalidValueError(
                    field=name, reason=f"must be at least 1: no route beats the great circle (got {value})"
                )
        if not (math.isfinite(self.base_ms) and self.base_ms >= 0):
            raise InvalidValueError(field="base_ms", reason=f"must not be negative (got {self.base_ms})")
        if self.entry_hubs < 1:
            raise InvalidValueError(field="entry_hubs", reason=f"must be at least 1 (got {self.entry_hubs})")
        for continent, cost in self.hop_ms.items():
            if continent not in CONTINENTS:
                raise InvalidValueError(
                    field=f"hop_ms.{continent}", reason=f"is not a continent code ({', '.join(CONTINENTS)})"
                )
            if not (math.isfinite(cost) and cost >= 0):
                raise InvalidValueError(
                    field=f"hop_ms.{continent}", reason=f"must not be negative (got {cost})"
                )

    def hop_cost(self, continent: str) -> float:
        return self.hop_ms.get(continent, 0.0)

    def route_factor(self, kind: LinkKind) -> float:
        return self.terrestrial_route_factor if kind == "terrestrial" else self.submarine_route_factor


@dataclass(frozen=True, slots=True, kw_only=True)
class Backbone:
    """Hubs, links and constants of one backbone file; validated, immutable."""

    hubs: tuple[Hub, ...]
    links: tuple[Link, ...]
    constants: BackboneConstants = field(default_factory=BackboneConstants)
    source: Path = Path("<memory>")
    _hubs_by_id: MappingProxyType[str, Hub] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.hubs:
            raise InvalidValueError(field="hubs", reason="the backbone needs at least one hub")
        by_id: dict[str, Hub] = {}
        for index, hub in enumerate(self.hubs):
            if hub.id in by_id:
                raise InvalidValueError(field=f"hubs[{index}].id", reason=f"{hub.id} is used twice")
            by_id[hub.id] = hub
        pairs: set[frozenset[str]] = set()
        for index, link in enumerate(self.links):
            for end in (link.a, link.b):
                if end not in by_id:
                    raise InvalidValueError(
                        field=f"links[{index}]", reason=f"hub {end!r} is not defined in hubs"
                    )
            pair = frozenset((link.a, link.b))
            if pair in pairs:
                raise InvalidValueError(
                    field=f"links[{index}]",
                    reason=f"{link.a} - {link.b} is listed twice; give one link per hub pair",
                )
            pairs.add(pair)
        object.__setattr__(self, "_hubs_by_id", MappingProxyType(by_id))

    def hub(self, hub_id: str) -> Hub:
        return self._hubs_by_id[hub_id]

    def length_km(self, link: Link) -> float:
        """The link's published length, else its great circle times the kind's route factor."""
        if link.km is not None:
            return link.km
        a, b = self.hub(link.a), self.hub(link.b)
        return great_circle_km(
            a.latitude, a.longitude, b.latitude, b.longitude
        ) * self.constants.route_factor(link.kind)

    def with_constants(self, constants: BackboneConstants) -> Backbone:
        return replace(self, constants=constants)

    def without_links(self, cut: frozenset[frozenset[str]]) -> Backbone:
        """The backbone with the links between the given hub pairs removed (a cable cut)."""
        return replace(
            self, links=tuple(link for link in self.links if frozenset((link.a, link.b)) not in cut)
        )


@functools.lru_cache(maxsize=8)
def load_backbone(path: Path) -> Backbone:
    """Read and validate a backbone file; every problem is a WorldFileError naming its key.

    Cached by path: a backbone is immutable, and every latency model of a process shares it.
    """
    try:
        document = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise WorldFileError(path, "", f"cannot read the backbone file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise WorldFileError(path, "", f"is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise WorldFileError(path, "", f"is not valid TOML: {exc}") from exc
    root = TableReader(document, source=path)
    hubs = tuple(_hub(reader) for reader in root.tables("hubs"))
    raw_links = document.get("links")
    links = tuple(
        _link(reader, has_km=isinstance(raw_links, list) and "km" in raw_links[index])
        for index, reader in enumerate(root.tables("links"))
    )
    constants = _constants(root.table("model", {}))
    root.reject_unknown()
    try:
        return Backbone(hubs=hubs, links=links, constants=constants, source=path)
    except InvalidValueError as exc:
        raise WorldFileError(path, exc.field, exc.reason) from exc


def _build_error(reader: TableReader, exc: InvalidValueError) -> WorldFileError:
    return WorldFileError(reader.source, f"{reader.field_prefix()}{exc.field}", exc.reason)


def _hub(reader: TableReader) -> Hub:
    try:
        hub = Hub(
            id=reader.string("id"),
            city=reader.string("city"),
            continent=reader.string("continent"),
            latitude=reader.number("latitude"),
            longitude=reader.number("longitude"),
        )
    except InvalidValueError as exc:
        raise _build_error(reader, exc) from exc
    reader.reject_unknown()
    return hub


def _link(reader: TableReader, *, has_km: bool) -> Link:
    kind = reader.string("kind")
    if kind not in _KINDS:
        reader.fail("kind", f"must be one of {', '.join(_KINDS)} (got {kind!r})")
    km = reader.number("km") if has_km else None
    try:
        link = Link(
            a=reader.string("a"),
            b=reader.string("b"),
            kind="terrestrial" if kind == "terrestrial" else "submarine",
            km=km,
            name=reader.string("name", ""),
        )
    except InvalidValueError as exc:
        raise _build_error(reader, exc) from exc
    reader.reject_unknown()
    return link


def _constants(reader: TableReader) -> BackboneConstants:
    defaults = BackboneConstants()
    hop_reader = reader.table("hop_ms", {})
    hops = {continent: hop_reader.number(continent, 0.0) for continent in CONTINENTS}
    hop_reader.reject_unknown()
    try:
        constants = BackboneConstants(
            fiber_km_per_ms=reader.number("fiber_km_per_ms", defaults.fiber_km_per_ms),
            base_ms=reader.number("base_ms", defaults.base_ms),
            access_route_factor=reader.number("access_route_factor", defaults.access_route_factor),
            terrestrial_route_factor=reader.number(
                "terrestrial_route_factor", defaults.terrestrial_route_factor
            ),
            submarine_route_factor=reader.number("submarine_route_factor", defaults.submarine_route_factor),
            entry_hubs=reader.integer("entry_hubs", defaults.entry_hubs),
            hop_ms=MappingProxyType(hops),
        )
    except InvalidValueError as exc:
        raise _build_error(reader, exc) from exc
    reader.reject_unknown()
    return constants
