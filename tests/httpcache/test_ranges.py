"""Single byte ranges from a complete 200 (RFC 9110 14)."""

import pytest

from httpcache import ranges

BODY = b"0123456789"


@pytest.mark.parametrize(
    ("value", "status", "body", "content_range"),
    [
        ("bytes=0-3", 206, b"0123", "bytes 0-3/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-2", 206, b"89", "bytes 8-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=10-", 416, b"", "bytes */10"),
        ("bytes=-0", 416, b"", "bytes */10"),
        ("bytes=0-1,3-4", 200, BODY, None),
        ("items=0-1", 200, BODY, None),
        ("bytes=5-2", 200, BODY, None),
    ],
)
def test_apply(value: str, status: int, body: bytes, content_range: str | None) -> None:
    st, hs, b = ranges.apply(value, (("content-length", "10"), ("etag", '"a"')), BODY)
    assert (st, b) == (status, body)
    assert dict(hs).get("content-range") == content_range
    assert dict(hs)["content-length"] == str(len(body))
