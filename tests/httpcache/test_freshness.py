"""Age and lifetime (RFC 9111 4.2)."""

import pytest

from httpcache import directives, freshness


def test_age_calculation_rfc_9111_4_2_3() -> None:
    # Sent at 100, answered at 103, origin Date 98, upstream Age 10.
    c = freshness.corrected_initial_age(age_value=10, date_value=98, request_time=100, response_time=103)
    assert c == max(103 - 98, 10 + 3) == 13
    assert freshness.current_age(c, 103, 110) == 20


def test_apparent_age_is_never_negative() -> None:
    assert (
        freshness.corrected_initial_age(age_value=0, date_value=200, request_time=100, response_time=100) == 0
    )


@pytest.mark.parametrize(
    ("values", "age"), [([], 0), (["5"], 5), (["5", "9"], 5), (["x"], 0), (["-3"], 0), (["7, 8"], 7)]
)
def test_parse_age(values: list[str], age: float) -> None:
    assert freshness.parse_age(values) == age


@pytest.mark.parametrize(
    ("cc", "expires", "lifetime"),
    [
        ("s-maxage=5, max-age=60", None, 5),
        ("max-age=60", "Sun, 06 Nov 1994 08:49:37 GMT", 60),
        ("max-age=abc", None, 0),  # invalid -> stale
        ("", "Sun, 06 Nov 1994 08:50:37 GMT", 60),
        ("", "0", 0),  # invalid Expires -> already expired
        ("public", None, None),
    ],
)
def test_explicit_lifetime(cc: str, expires: str | None, lifetime: float | None) -> None:
    assert freshness.explicit_lifetime(directives.parse([cc]), expires, 784111777.0) == lifetime


def test_heuristic() -> None:
    date = 784111777.0
    lm = "Sun, 06 Nov 1994 08:32:57 GMT"  # 1000 s before Date
    assert freshness.heuristic_lifetime(200, lm, date) == 100
    assert freshness.heuristic_lifetime(302, lm, date) == 0
    assert freshness.heuristic_lifetime(200, "Sun, 06 Nov 1984 08:49:37 GMT", date) == 86400
    assert freshness.heuristic_lifetime(200, None, date) == 0
