"""Pure route matching: exact paths beat prefixes, and the longest prefix wins.

A route path is either exact ("/hello") or a prefix ending in "/..." ("/api/..." matches
"/api", "/api/" and "/api/anything/below", never "/apix"; "/..." matches every path).
Matching costs one dict lookup per path segment, whatever the number of routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

WILDCARD = "/..."


class HasPath(Protocol):
    """Anything routable: it has a route ``path``."""

    @property
    def path(self) -> str: ...


R = TypeVar("R", bound=HasPath)


def route_prefix(path: str) -> str | None:
    """ "/api/..." -> "/api", "/..." -> "" (everything); None for an exact route."""
    if path.endswith(WILDCARD):
        return path[: -len(WILDCARD)]
    return None


@dataclass(frozen=True, slots=True)
class RouteTable(Generic[R]):
    """Routes indexed for matching; build it once per manifest."""

    exact: dict[str, R] = field(default_factory=dict)
    prefixes: dict[str, R] = field(default_factory=dict)

    @classmethod
    def build(cls, routes: Iterable[R]) -> RouteTable[R]:
        """Index ``routes``; a later duplicate path never replaces an earlier one."""
        table: RouteTable[R] = cls()
        for route in routes:
            prefix = route_prefix(route.path)
            if prefix is None:
                table.exact.setdefault(route.path, route)
            else:
                table.prefixes.setdefault(prefix, route)
        return table

    def match(self, path: str) -> R | None:
        """The route serving ``path`` (no query string), or None."""
        found = self.exact.get(path)
        if found is not None:
            return found
        prefixes = self.prefixes
        if not prefixes:
            return None
        candidate = path.rstrip("/") if path != "/" else ""
        while True:
            found = prefixes.get(candidate)
            if found is not None:
                return found
            if not candidate:
                return None
            candidate = candidate[: candidate.rfind("/")]
