"""Cache-Control parsing (RFC 9111 5.2) and targeted fields (RFC 9213)."""

import pytest

from httpcache import directives


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["max-age=60"], {"max-age": "60"}),
        (["Max-Age=60, no-cache"], {"max-age": "60", "no-cache": None}),
        (['private="set-cookie, x-a", max-age=5'], {"private": "set-cookie, x-a", "max-age": "5"}),
        (['max-age="60"'], {"max-age": "60"}),
        (["max-age=60", "max-age=10"], {"max-age": "60"}),  # first of a duplicate wins
        ([" , ,public,"], {"public": None}),
        (['x="a\\"b,c"'], {"x": 'a"b,c'}),
    ],
)
def test_parse(lines: list[str], expected: dict[str, str | None]) -> None:
    assert directives.parse(lines) == expected


@pytest.mark.parametrize(
    ("arg", "value"), [("60", 60.0), ("-1", None), ("1.5", None), ("", None), ("abc", None)]
)
def test_delta_seconds(arg: str, value: float | None) -> None:
    assert directives.delta(directives.parse([f"max-age={arg}"]), "max-age") == value


def test_delta_caps_at_2_pow_31() -> None:
    assert directives.delta({"max-age": "99999999999999"}, "max-age") == 2.0**31


def test_field_names() -> None:
    d = directives.parse(['no-cache="Set-Cookie, X-A"'])
    assert directives.field_names(d, "no-cache") == ("set-cookie", "x-a")
    assert directives.field_names({"no-cache": None}, "no-cache") == ()


def test_targeted_priority() -> None:
    hs = [
        ("Cache-Control", "no-store"),
        ("CDN-Cache-Control", "max-age=10"),
        ("EdgeCDN-Cache-Control", "max-age=20"),
    ]
    assert directives.for_cache(hs) == {"max-age": "20"}
    assert directives.for_cache(hs[:2]) == {"max-age": "10"}
    assert directives.for_cache(hs[:1]) == {"no-store": None}
