"""Size and duration parsers, example-based and with Hypothesis."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifest import format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16MiB", 16 * 1024**2),
        ("16 MiB", 16 * 1024**2),
        ("16mib", 16 * 1024**2),
        ("512KiB", 512 * 1024),
        ("1GiB", 1024**3),
        ("64Mi", 64 * 1024**2),
        ("64M", 64 * 1024**2),
        ("1.5MiB", 1536 * 1024),
        ("10MB", 10_000_000),
        ("64kB", 64_000),
        ("100B", 100),
        ("100", 100),
        (4096, 4096),
    ],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "-1MiB", "16 XB", "1.5B", "0.3KiB", "1e3", "16 Mi B", True, 1.5])
def test_bad_sizes(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("100ms", 0.1), ("1.5s", 1.5), ("2m", 120.0), ("250us", 0.00025), ("250µs", 0.00025), ("1h", 3600.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert math.isclose(parse_duration(text), seconds)


@pytest.mark.parametrize("text", ["", "100", "ms", "10 parsecs", "-1s", "1,5s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


@given(st.integers(0, 10**6), st.sampled_from(sorted(_SIZE_UNITS)), st.sampled_from(["", " "]))
def test_size_units_multiply(number: int, unit: str, space: str) -> None:
    assert parse_size(f"{number}{space}{unit}") == number * _SIZE_UNITS[unit]
    assert parse_size(f"{number}{space}{unit.upper()}") == number * _SIZE_UNITS[unit]


@given(st.integers(0, 2**40))
def test_format_size_round_trips(size: int) -> None:
    assert parse_size(format_size(size)) == size


@given(
    st.integers(0, 10**7),
    st.sampled_from([("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]),
)
def test_duration_units_multiply(number: int, unit: tuple[str, float]) -> None:
    assert math.isclose(parse_duration(f"{number}{unit[0]}"), number * unit[1], rel_tol=1e-12)


@given(st.text(max_size=20))
def test_arbitrary_text_parses_or_raises_value_error(text: str) -> None:
    for parse in (parse_size, parse_duration):
        try:
            value = parse(text)
        except ValueError as exc:
            message = str(exc)
            assert message
        else:
            assert value >= 0
