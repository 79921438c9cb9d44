"""Errors of the geo library: one base class, specific errors that carry their facts."""

from __future__ import annotations

from os import PathLike


class GeoError(Exception):
    """Base class for every error raised by the geo library."""


class WorldFileError(GeoError):
    """A world file cannot be read, or a value in it is invalid.

    ``key`` is the dotted path of the offending value (``regions[2].latitude``), empty
    when the file as a whole is at fault (missing, not TOML).
    """

    def __init__(self, path: str | PathLike[str], key: str, reason: str) -> None:
        where = f"{path}: {key}" if key else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.key = key
        self.reason = reason


class UnknownRegionError(GeoError, LookupError):
    """A region id that the world does not define."""

    def __init__(self, *, region_id: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown region {region_id!r}; the world has: {', '.join(known)}")
        self.region_id = region_id
        self.known = known


class UnknownCountryError(GeoError, LookupError):
    """A country code that the world does not define."""

    def __init__(self, *, code: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown country {code!r}; the world has: {', '.join(known)}")
        self.code = code
        self.known = known


class UnknownPlaceError(GeoError, LookupError):
    """A place name (for distances and RTTs) that is no country, region, city or coordinate."""

    def __init__(self, *, name: str) -> None:
        super().__init__(
            f"unknown place {name!r}: expected a country code (KR), a region id (ap-northeast-2), "
            "a city of the world (Seoul) or a coordinate (37.57,126.98)"
        )
        self.name = name


class GeoDatabaseError(GeoError):
    """A geo database is missing, corrupt, of the wrong type, or cannot be written."""

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class InvalidAddressError(GeoError, ValueError):
    """A string that is not an IPv4 or IPv6 address."""

    def __init__(self, *, address: str) -> None:
        super().__init__(f"{address!r} is not an IP address")
        self.address = address


class InvalidValueError(GeoError, ValueError):
    """A value given to a geo type is out of range; ``field`` names it.

    The world loader re-raises it as a :class:`WorldFileError` whose key is the full
    dotted path (``regions[2].latitude``), so the same check serves files and code.
    """

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
