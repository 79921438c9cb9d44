"""The load client's HTTP/1.1 response reader: any split of the bytes reads the same."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.load.client import Connection, CountryPool, RequestSpec
from simulator.load.headers import serving_region

Outcome = tuple[str, float, float, int, str, str | None, str]


def _pool(outcomes: list[Outcome], expect: bytes | None) -> tuple[asyncio.AbstractEventLoop, CountryPool]:
    loop = asyncio.new_event_loop()

    async def build() -> CountryPool:
        return CountryPool(
            country="KR", local_addresses=("127.8.0.1",), host="127.0.0.1", port=1, payload=b"",
            method="GET", max_connections=1, timeout_s=1.0,
            sink=lambda *outcome: outcomes.append(outcome), expect=expect,
        )  # fmt: skip

    return loop, loop.run_until_complete(build())


def _response(
    status: int, body: bytes, *, chunked: bool, route: str | None, region: str | None, app: str | None = None
) -> bytes:
    head = [f"HTTP/1.1 {status} Whatever", "Server: test"]
    if app is not None:
        head.append(f"X-Edge-App: {app}")
    if route is not None:
        head.append(f"X-Edge-Route: region={route}; node={route}-a; reason=nearest; rtt_ms=3.5")
    if region is not None:
        head.append(f"x-edge-region: {region}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7)
        )
        payload += b"0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


regions = st.from_regex(r"[a-z]{2}-[a-z]{4,9}-[1-3]", fullmatch=True)
apps = st.from_regex(r"[a-z][a-z-]{0,11}@[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}(-rc\.[0-9])?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([200, 204, 301, 404, 503]),
    body=st.binary(max_size=300),
    chunked=st.booleans(),
    route=st.none() | regions,
    region=st.none() | regions,
    app=st.none() | apps,
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
    check=st.booleans(),
)
def test_any_split_reads_the_same_answer(
    status: int,
    body: bytes,
    chunked: bool,
    route: str | None,
    region: str | None,
    app: str | None,
    cuts: list[int],
    check: bool,
) -> None:
    body = b"" if status == 204 else body
    data = _response(status, body, chunked=chunked, route=route, region=region, app=app)
    expect = body[len(body) // 3 : len(body) // 3 + 5] if check and body else None
    outcomes: list[Outcome] = []
    loop, pool = _pool(outcomes, expect)
    try:
        conn = Connection(pool)
        for _ in range(2):  # twice on the same keep-alive connection: the reader resets in between
            pool.idle.clear()  # as submit() would take it
            conn.busy, conn.intended = True, 1.0
            points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
            for start, end in itertools.pairwise(points):
                conn.data_received(data[start:end])
        expected_region = route or region or ""
        assert [(o[3], o[4], o[5], o[6]) for o in outcomes] == [
            (status, expected_region, None, app or "")
        ] * 2
        assert outcomes[0][6] is outcomes[1][6]  # one interned string, however many answers
        assert not conn.busy
        assert pool.idle == [conn]
    finally:
        loop.close()


def test_a_missing_expected_text_is_a_check_error() -> None:
    outcomes: list[Outcome] = []
    loop, pool = _pool(outcomes, b'"country":"KR"')
    try:
        conn = Connection(pool)
        conn.busy = True
        conn.data_received(_response(200, b'{"country":"JP"}', chunked=False, route=None, region="r"))
        assert [o[5] for o in outcomes] == ["check"]
    finally:
        loop.close()


def test_garbage_is_a_protocol_error() -> None:
    outcomes: list[Outcome] = []
    loop, pool = _pool(outcomes, None)
    try:
        conn = Connection(pool)
        conn.busy = True
        conn.data_received(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        assert [o[5] for o in outcomes] == ["protocol"]
    finally:
        loop.close()


def test_region_headers() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nx-edge-route: reason=nearest;region=ap-northeast-2 ; node=n\r\n"
        b"x-edge-region: us-east-1"
    )
    assert serving_region(head.lower(), head) == "ap-northeast-2"
    head = b"HTTP/1.1 200 OK\r\nX-Edge-Region:  eu-central-1 "
    assert serving_region(head.lower(), head) == "eu-central-1"
    assert serving_region(b"http/1.1 200 ok", b"HTTP/1.1 200 OK") == ""


def test_request_bytes() -> None:
    spec = RequestSpec(
        method="POST", path="/hello?x=1", headers=(("Accept", "application/json"),), body=b"hi"
    )
    assert spec.encode("127.0.0.1:8080") == (
        b"POST /hello?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: edgecdn-load\r\n"
        b"Accept: application/json\r\nContent-Length: 2\r\n\r\nhi"
    )
