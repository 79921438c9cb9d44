"""Places on the map: a region, a country, or a bare coordinate, and names for them.

People type places (``edgecdn world rtt KR ap-northeast-1``); code passes objects. Both
end up as a :data:`Place` with a latitude and a longitude. A name is tried as, in
order: a coordinate ``LAT,LON``, a region id, a country code, a PoP city (the region),
a country name, and a country's city (which stands for the country's clients, located at
its population-weighted centre). Case and accents do not matter: ``sao paulo`` finds
São Paulo.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from geo.errors import InvalidValueError, UnknownPlaceError
from geo.world import Country, Region, World, check_coordinates


@dataclass(frozen=True, slots=True, kw_only=True)
class Coordinate:
    """A point given by latitude and longitude in degrees."""

    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        check_coordinates(self.latitude, self.longitude)

    def __str__(self) -> str:
        return f"{self.latitude:g},{self.longitude:g}"


Place = Region | Country | Coordinate

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_COORDINATE = re.compile(rf"\s*({_NUMBER})\s*,\s*({_NUMBER})\s*")


def place_label(place: Place) -> str:
    """How a place reads in a table: ``ap-northeast-2 (Seoul)``, ``KR (South Korea)``."""
    if isinstance(place, Region):
        return f"{place.id} ({place.pop})"
    if isinstance(place, Country):
        return f"{place.code} ({place.name})"
    return str(place)


def resolve_place(world: World, name: str) -> Place:
    """The place ``name`` refers to in ``world``; UnknownPlaceError when none."""
    match = _COORDINATE.fullmatch(name)
    if match:
        try:
            return Coordinate(latitude=float(match[1]), longitude=float(match[2]))
        except InvalidValueError as exc:
            raise UnknownPlaceError(name=name) from exc
    key = _fold(name)
    if not key:
        raise UnknownPlaceError(name=name)
    candidates: list[tuple[Place, str]] = [
        *((r, r.id) for r in world.regions),
        *((c, c.code) for c in world.countries),
        *((r, r.pop) for r in world.regions),
        *((c, c.name) for c in world.countries),
        *((c, c.city) for c in world.countries),
    ]
    for place, label in candidates:
        if _fold(label) == key:
            return place
    raise UnknownPlaceError(name=name)


def _fold(text: str) -> str:
    """Lower case without accents and with single spaces: how names are compared."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())
