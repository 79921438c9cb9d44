"""HTTP-date formats of RFC 9110 5.6.7."""

import pytest

from httpcache.dates import format_http_date, parse_http_date

T = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example


@pytest.mark.parametrize(
    "value",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
)
def test_rfc_examples_all_parse_to_the_same_instant(value: str) -> None:
    assert parse_http_date(value, now=1.7e9) == T


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0",
        "-1",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Thu, 01 Jan 1970 00:00:00 +0000",
    ],
)
def test_invalid_is_none(value: str) -> None:
    assert parse_http_date(value) is None


def test_two_digit_year_more_than_50_years_ahead_is_last_century() -> None:
    # In 2026, "70" is 2070 (44 years ahead, kept); "99" would be 2099 (73 ahead) -> 1999.
    now = 1.78e9
    assert format_http_date(parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT", now=now) or 0).endswith(
        "2070 00:00:00 GMT"
    )
    assert format_http_date(parse_http_date("Friday, 01-Jan-99 00:00:00 GMT", now=now) or 0).endswith(
        "1999 00:00:00 GMT"
    )


def test_round_trip() -> None:
    assert parse_http_date(format_http_date(T)) == T
