"""The lean HTTP/1.1 server with raw sockets: bad input gets a clear answer and only
its own connection closes; pipelining, 100-continue, HEAD and chunked bodies behave."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import pytest

from httpfront.messages import ClientLink, FrontRequest, ResponseWriter
from httpfront.server import DEFAULT_MAX_HEAD_BYTES, ClientTimeouts, FrontendServer, _ClientConnection


async def echo(request: FrontRequest, writer: ResponseWriter) -> None:
    """Answers what it saw: method, path, query, the body's length and sha256."""
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.body():
        digest.update(chunk)
        size += len(chunk)
    if request.path == "/stream":
        await writer.start(200, "OK", [(b"content-type", b"text/plain")], length=None)
        for part in (b"one ", b"two ", b"three"):
            await writer.write(part)
        await writer.end()
        return
    body = json.dumps(
        {"method": request.method, "path": request.path, "query": request.query, "size": size,
         "sha256": digest.hexdigest(), "peer": request.peer}
    ).encode()  # fmt: skip
    await writer.respond(200, [(b"content-type", b"application/json")], body)


@pytest.fixture
async def server() -> AsyncIterator[int]:
    front = FrontendServer(echo)
    _, port = await front.start("127.0.0.1", 0)
    try:
        yield port
    finally:
        await front.close(1.0)


async def exchange(port: int, data: bytes, *, read_until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read() if read_until_close else await reader.read(65536)
    finally:
        writer.close()


def split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


async def test_a_plain_get(server: int) -> None:
    status, headers, body = split(
        await exchange(server, b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    )
    assert status == 200
    assert headers["connection"] == "close"
    seen = json.loads(body)
    assert (seen["method"], seen["path"], seen["query"], seen["size"]) == ("GET", "/a/b", "x=1", 0)
    assert seen["peer"] == "127.0.0.1"


@pytest.mark.parametrize(
    "garbage",
    [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nHost h\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"],
)
async def test_malformed_requests_get_400_and_the_server_goes_on(server: int, garbage: bytes) -> None:
    status, headers, body = split(await exchange(server, garbage))
    assert status == 400
    assert headers["connection"] == "close"
    answer = json.loads(body)
    assert answer["error"] == "bad_request"
    assert "malformed HTTP request" in answer["message"]
    status, _, _ = split(await exchange(server, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert status == 200


async def test_a_head_over_the_limit_gets_431(server: int) -> None:
    big = b"x" * (DEFAULT_MAX_HEAD_BYTES + 10)
    status, _, body = split(await exchange(server, b"GET / HTTP/1.1\r\nX-Big: " + big + b"\r\n\r\n"))
    assert status == 431
    assert "exceeds" in json.loads(body)["message"]


async def test_protocol_upgrades_are_refused(server: int) -> None:
    request = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    status, _, _ = split(await exchange(server, request))
    assert status == 501


async def test_pipelined_requests_are_answered_in_order(server: int) -> None:
    one = b"POST /first HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    two = b"GET /second HTTP/1.1\r\nHost: h\r\n\r\n"
    three = b"POST /third HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    answer = await exchange(server, one + two + three)
    bodies = [json.loads(part[part.index(b"{") :]) for part in answer.split(b"HTTP/1.1 200 OK")[1:]]
    assert [(b["path"], b["size"]) for b in bodies] == [("/first", 5), ("/second", 0), ("/third", 3)]
    assert bodies[0]["sha256"] == hashlib.sha256(b"hello").hexdigest()


async def test_expect_100_continue_is_answered_before_the_body(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(
        b"PUT /up HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    async with asyncio.timeout(5):
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")
        status, _, body = split(await reader.read())
    writer.close()
    assert (status, json.loads(body)["size"]) == (200, 4)


async def test_a_chunked_upload_is_read_whole(server: int) -> None:
    body = (
        b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (b"ab", b"cde", b"f" * 1000)) + b"0\r\n\r\n"
    )
    request = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body
    status, _, answer = split(await exchange(server, request))
    assert (status, json.loads(answer)["size"]) == (200, 1005)


async def test_a_head_request_gets_headers_only(server: int) -> None:
    status, headers, body = split(
        await exchange(server, b"HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    )
    assert status == 200
    assert int(headers["content-length"]) > 0
    assert body == b""


async def test_an_answer_of_unknown_length_goes_chunked(server: int) -> None:
    status, headers, body = split(
        await exchange(server, b"GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    )
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"


async def test_an_http_1_0_client_gets_a_closed_connection(server: int) -> None:
    status, headers, _ = split(await exchange(server, b"GET / HTTP/1.0\r\n\r\n"))
    assert status == 200
    assert headers["connection"] == "close"


async def test_a_client_that_leaves_mid_body_does_not_hurt_others(server: int) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\npartial")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.05)
    status, _, _ = split(await exchange(server, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert status == 200


@pytest.fixture
async def impatient() -> AsyncIterator[int]:
    front = FrontendServer(echo, ClientTimeouts(head_s=0.3, body_s=0.3, idle_s=0.5))
    _, port = await front.start("127.0.0.1", 0)
    try:
        yield port
    finally:
        await front.close(1.0)


async def test_a_head_sent_too_slowly_gets_408(impatient: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n")  # and never the blank line (slowloris)
    async with asyncio.timeout(5):
        status, _, body = split(await reader.read())
    writer.close()
    assert status == 408
    assert "did not arrive within 0.3s" in json.loads(body)["message"]


async def test_an_idle_kept_alive_connection_is_closed(impatient: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    async with asyncio.timeout(5):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        started = asyncio.get_running_loop().time()
        await reader.read()  # the body, then EOF once the idle timeout passes
        waited = asyncio.get_running_loop().time() - started
    writer.close()
    assert 0.4 <= waited < 3


async def test_a_stalled_body_closes_that_connection_only(impatient: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient)
    writer.write(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly this")
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # cut: no answer for a body that never came
    writer.close()
    status, _, _ = split(await exchange(impatient, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"))
    assert status == 200


async def test_a_busy_keep_alive_connection_is_not_closed_early(impatient: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", impatient)
    for _ in range(4):  # each request within the idle timeout keeps the connection open
        writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        async with asyncio.timeout(5):
            _, headers, _ = split(await reader.readuntil(b"\r\n\r\n"))
            await reader.readexactly(int(headers["content-length"]))
        await asyncio.sleep(0.3)
    writer.close()


async def test_a_failing_fast_path_leaves_the_request_to_the_handler() -> None:
    """The fast path runs inside the parser's callback: what it raises must not read as a
    malformed request (400); the request is served as a task instead."""

    def broken(request: FrontRequest, link: ClientLink) -> bool:
        raise RuntimeError("a bug in the fast path")

    front = FrontendServer(echo, fast_path=broken)
    _, port = await front.start("127.0.0.1", 0)
    try:
        status, _, body = split(
            await exchange(port, b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        )
    finally:
        await front.close(1.0)
    assert status == 200
    assert json.loads(body)["path"] == "/x"


async def test_a_fast_path_that_declines_leaves_the_request_to_the_handler() -> None:
    offered: list[str] = []

    def declines(request: FrontRequest, link: ClientLink) -> bool:
        offered.append(request.path)
        return False

    front = FrontendServer(echo, fast_path=declines)
    _, port = await front.start("127.0.0.1", 0)
    try:
        get = b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        post = b"POST /y HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        answers = [split(await exchange(port, data)) for data in (get, post)]
    finally:
        await front.close(1.0)
    assert [status for status, _, _ in answers] == [200, 200]
    assert offered == ["/x"]  # only bodiless requests are offered


async def refuse_bodies(request: FrontRequest, writer: ResponseWriter) -> None:
    """Answers 413 at once, reading none of the body (as the edge node does past its limit)."""
    await writer.respond(413, [(b"content-type", b"text/plain")], b"too large", close=True)


@pytest.fixture
async def refusing() -> AsyncIterator[tuple[FrontendServer, int]]:
    front = FrontendServer(refuse_bodies)
    _, port = await front.start("127.0.0.1", 0)
    try:
        yield front, port
    finally:
        await front.close(1.0)


async def test_an_early_answer_reaches_a_client_still_sending_its_body(
    refusing: tuple[FrontendServer, int],
) -> None:
    """Closing with the body unread would reset the connection and could lose the 413: the
    server drops the rest of the body (lingering close) and the client reads its answer."""
    _, port = refusing
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    size = 8 * 1024 * 1024
    writer.write(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)
    async with asyncio.timeout(10):
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()  # a reset would fail here
        status, headers, body = split(await reader.read())
    assert (status, body) == (413, b"too large")
    assert headers["connection"] == "close"
    writer.close()
    await writer.wait_closed()


async def test_a_lingering_connection_is_cut_after_the_linger_time(
    refusing: tuple[FrontendServer, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    front, port = refusing
    monkeypatch.setattr("httpfront.server.LINGER_S", 0.2)
    front.timeouts = ClientTimeouts(head_s=0.2, body_s=5, idle_s=5)  # sweeps every 0.1 s
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\nsome")
    async with asyncio.timeout(5):
        status, _, _ = split(await reader.read())  # the answer, then the server's FIN
        assert status == 413
    for _ in range(100):  # the client never finishes: cut after LINGER_S
        if not front.connections:
            break
        await asyncio.sleep(0.05)
    assert not front.connections
    writer.close()


class RecordingTransport(asyncio.Transport):
    """What the connection did with its socket, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[bytes | str] = []

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.events.append(bytes(data))

    def close(self) -> None:
        self.events.append("close")

    def is_closing(self) -> bool:
        return "close" in self.events

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")


async def test_answers_from_one_loop_pass_leave_in_one_write_in_order_before_a_close() -> None:
    """Fast-path answers are queued and written once the loop has run every ready callback:
    one write (one wake-up of the client) for all a pass produced, measured to nearly halve
    the CPU per request under load (bench/README.md, "Edge node throughput")."""

    def answer(request: FrontRequest, link: ClientLink) -> bool:
        link.send_now(b"answer %s;" % request.path.encode())
        link.done(request)
        return True

    front = FrontendServer(echo, fast_path=answer)
    conn = _ClientConnection(front)
    transport = RecordingTransport()
    conn.connection_made(transport)
    conn.data_received(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert written(transport) == []  # nothing yet: the callbacks only queue
    await asyncio.sleep(0)
    assert written(transport) == [b"answer /1;answer /2;"]
    # A close cannot wait for the loop: what is queued is written first, then the close.
    conn.data_received(b"GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert written(transport) == [b"answer /1;answer /2;", b"answer /3;", "close"]
    await asyncio.sleep(0)
    assert written(transport)[-1] == "close"


def written(transport: RecordingTransport) -> list[bytes | str]:
    return [event for event in transport.events if event not in ("pause", "resume")]
