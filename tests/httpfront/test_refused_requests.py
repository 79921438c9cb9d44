"""Requests the lean server refuses before any handler sees them (issue 24, finding 5):
CONNECT and protocol upgrades get one 501, an HTTP/0.9 request line one 400, and the
connection closes; no second answer follows, from the fast path or from a handler."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from httpfront.messages import ClientLink, FrontRequest, ResponseWriter, whole_response
from httpfront.server import FrontendServer

OK = b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n"
WEBSOCKET = (
    b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
H2C = (
    b"POST /up HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n"
    b"Content-Length: 3\r\n\r\nabc"
)
REFUSED = [
    pytest.param(WEBSOCKET, 501, "not_implemented", id="websocket"),
    pytest.param(CONNECT, 501, "not_implemented", id="connect"),
    pytest.param(H2C, 501, "not_implemented", id="h2c-with-body"),
    pytest.param(b"GET /ok\r\n\r\n", 400, "bad_request", id="http09"),
    pytest.param(b"GET /ok\r\nHost: h\r\n\r\n", 400, "bad_request", id="http09-with-headers"),
]


class Served:
    """Every request a handler or the fast path saw: a refused one must never be among them."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def handler(self, request: FrontRequest, writer: ResponseWriter) -> None:
        self.paths.append(request.path)
        await writer.respond(200, [(b"content-type", b"text/plain")], b"served")

    def fast_path(self, request: FrontRequest, link: ClientLink) -> bool:
        self.paths.append(request.path)
        link.send_now(whole_response(200, "", [], b"served", keep_alive=link.keep_alive))
        link.done(request)
        return True


@pytest.fixture(params=["fast-path", "task"])
async def served(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Served, int]]:
    """A server answering from its fast path (as the edge node and router do), or as a task."""
    seen = Served()
    front = FrontendServer(seen.handler, fast_path=seen.fast_path if request.param == "fast-path" else None)
    _, port = await front.start("127.0.0.1", 0)
    try:
        yield seen, port
    finally:
        await front.close(1.0)


async def everything(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes (a test fails rather than hangs)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize(("request_bytes", "status", "kind"), REFUSED)
async def test_a_refused_request_gets_one_answer_and_the_connection_closes(
    served: tuple[Served, int], request_bytes: bytes, status: int, kind: str
) -> None:
    seen, port = served
    # Whatever follows on the connection (a tunnel's bytes, another request) is never served.
    answer = await everything(port, request_bytes + OK)
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status)
    assert b"\r\nconnection: close" in head
    assert json.loads(body)["error"] == kind
    assert seen.paths == []


async def test_a_refused_request_after_a_good_one_leaves_its_answer_alone(served: tuple[Served, int]) -> None:
    seen, port = served
    answer = await everything(port, OK + WEBSOCKET)
    assert [line.split(b"\r\n")[0] for line in answer.split(b"HTTP/1.1 ")[1:]] == [
        b"200 OK",
        b"501 Not Implemented",
    ]
    assert seen.paths == ["/ok"]


async def test_upgrade_without_connection_upgrade_is_an_ordinary_request(served: tuple[Served, int]) -> None:
    """``Upgrade`` means nothing unless ``Connection`` names it (RFC 9110 section 7.8)."""
    seen, port = served
    answer = await everything(
        port, b"GET /ok HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.count(b"HTTP/1.1 ") == 1
    assert seen.paths == ["/ok"]


@pytest.mark.parametrize("line", [b"GET /ok\r\n", b"GET /ok\n", b"\r\nGET /ok\r\n"])
async def test_an_http09_request_line_alone_is_refused_at_once(
    served: tuple[Served, int], line: bytes
) -> None:
    """As an HTTP/0.9 client sends it, with no head after: refused at once, not after the
    head timeout (30 s here; ``everything`` gives up after 5)."""
    seen, port = served
    answer = await everything(port, line)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["message"].startswith("HTTP/0.9")
    assert seen.paths == []


async def test_a_request_line_split_across_reads_is_not_taken_for_http09(served: tuple[Served, int]) -> None:
    seen, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in (b"GET /ok", b" HTTP/1.1\r\n", b"Host: h\r\n", b"Connection: close\r\n\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.05)  # each part its own read
        async with asyncio.timeout(5):
            answer = await reader.read()
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert seen.paths == ["/ok"]
