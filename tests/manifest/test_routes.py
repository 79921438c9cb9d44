"""The route matcher: exact beats prefix, the longest prefix wins, segments are respected."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifest import RouteTable


@dataclass(frozen=True)
class R:
    path: str


TABLE = RouteTable.build(
    [R("/hello"), R("/hello/..."), R("/api/..."), R("/api/v2/..."), R("/api/v2/special"), R("/static/...")]
)


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/hello", "/hello"),
        ("/hello/", "/hello/..."),
        ("/hello/ko", "/hello/..."),
        ("/api", "/api/..."),
        ("/api/", "/api/..."),
        ("/api/v1/items", "/api/..."),
        ("/api/v2", "/api/v2/..."),
        ("/api/v2/items/7", "/api/v2/..."),
        ("/api/v2/special", "/api/v2/special"),
        ("/api/v2/special/x", "/api/v2/..."),
        ("/apix", None),
        ("/", None),
        ("/hellox", None),
        ("/static//double", "/static/..."),
    ],
)
def test_matching(path: str, route: str | None) -> None:
    found = TABLE.match(path)
    assert (found.path if found else None) == route


def test_catch_all_is_the_last_resort() -> None:
    table = RouteTable.build([R("/..."), R("/a/..."), R("/b")])
    assert table.match("/") == R("/...")
    assert table.match("/zzz/y") == R("/...")
    assert table.match("/a/b/c") == R("/a/...")
    assert table.match("/b") == R("/b")
    assert table.match("/b/c") == R("/...")


def test_first_duplicate_wins() -> None:
    first, second = R("/x"), R("/x")
    assert RouteTable.build([first, second]).match("/x") is first


_segment = st.text("abc", min_size=1, max_size=3)
_paths = st.lists(_segment, max_size=4).map(lambda parts: "/" + "/".join(parts))


def _reference(routes: list[R], path: str) -> R | None:
    """Slow and obvious: exact first, then the longest matching prefix."""
    for route in routes:
        if route.path == path:
            return route
    best: R | None = None
    for route in routes:
        if not route.path.endswith("/..."):
            continue
        base = route.path[:-4]
        if (path == base or path.startswith(base + "/") or base == "") and (
            best is None or len(base) > len(best.path) - 4
        ):
            best = route
    return best


@given(
    exact=st.lists(_paths, max_size=6, unique=True),
    prefixes=st.lists(_paths, max_size=6, unique=True),
    path=_paths,
)
def test_matches_the_obvious_reference(exact: list[str], prefixes: list[str], path: str) -> None:
    routes = [R(p) for p in exact] + [R(p.rstrip("/") + "/...") for p in prefixes]
    assert RouteTable.build(routes).match(path) == _reference(routes, path)
