"""The host's test kit as one Spin SDK (Python) HTTP component: streaming, echo, and failures.

One component rather than several because each Python build carries CPython (~37 MB).

``GET /stream?size=N`` answers ``N`` bytes (default 1 MiB) of a repeating pattern, written
chunk by chunk into the ``outgoing-body`` stream after the response head is set, as a
streaming handler does. ``POST`` (any other path) echoes a summary of the request it got:
method, path with query, the body's length and its first bytes, and every header, one per line.

Each of these fails on purpose: ``/trap`` raises out of ``handle`` (the component traps),
``/loop`` never returns (the host's deadline must stop it), ``/oom`` allocates until memory
runs out, ``/outbound`` calls ``wasi:http/outgoing-handler`` (which the host refuses),
``/silent`` returns without answering, ``/hop-by-hop`` answers with a ``connection`` header,
``/big-write`` puts 64 KiB in one ``blocking-write-and-flush`` (WASI 0.2 allows 4096).
Anything else answers 200 ``fine`` through the SDK's high-level handler.
"""

from urllib.parse import parse_qs, urlsplit

from spin_sdk import http
from spin_sdk.http import Request, Response
from spin_sdk.wit import exports
from spin_sdk.wit.imports.streams import StreamError_Closed
from spin_sdk.wit.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    Method_Post,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from spin_sdk.wit.types import Err, Ok

CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        target = request.path_with_query() or "/"
        path = target.split("?")[0]
        if path == "/trap":
            raise RuntimeError("deliberate failure")
        if path == "/loop":
            count = 0
            while True:
                count += 1
        if path == "/oom":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if path == "/outbound":
            http.send(Request("GET", "http://example.com/", {}, None))
        if path == "/silent":
            return
        if path == "/big-write":
            response = OutgoingResponse(Fields())
            body = response.body()
            ResponseOutparam.set(response_out, Ok(response))
            body.write().blocking_write_and_flush(bytes(65536))
            return
        if isinstance(request.method(), Method_Post):
            echo(request, target, response_out)
            return
        if path == "/stream":
            stream_pattern(target, response_out)
            return
        http.IncomingHandler.handle(_Fine(path == "/hop-by-hop"), request, response_out)


def echo(request: IncomingRequest, target: str, response_out: ResponseOutparam) -> None:
    data = read_body(request)
    lines = [
        "method POST",
        f"target {target}",
        f"body-length {len(data)}",
        f"body-head {data[:16]!r}",
    ]
    lines += [f"header {name}: {value.decode()}" for name, value in request.headers().entries()]
    text = ("\n".join(lines) + "\n").encode()
    respond(response_out, 200, [("content-type", b"text/plain")], [text])


def stream_pattern(target: str, response_out: ResponseOutparam) -> None:
    query = parse_qs(urlsplit(target).query)
    size = int(query.get("size", [str(1 << 20)])[0])
    full, rest = divmod(size, CHUNK)
    chunks = [PATTERN] * full + ([PATTERN[:rest]] if rest else [])
    headers = [("content-type", b"application/octet-stream"), ("x-size", str(size).encode())]
    respond(response_out, 200, headers, chunks)


def read_body(request: IncomingRequest) -> bytes:
    body = request.consume()
    stream = body.stream()
    data = bytearray()
    while True:
        try:
            data += stream.blocking_read(CHUNK)
        except Err as err:
            if isinstance(err.value, StreamError_Closed):
                break
            raise
    stream.__exit__(None, None, None)
    IncomingBody.finish(body)
    return bytes(data)


def respond(response_out: ResponseOutparam, status: int, headers: list, chunks) -> None:
    """Send the head, then stream ``chunks`` as WASI 0.2 asks: ``write`` no more than
    ``check-write`` permits (waiting on the stream's pollable when it permits nothing),
    then ``blocking-flush`` (``blocking-write-and-flush`` may carry only 4096 bytes)."""
    response = OutgoingResponse(Fields.from_list(headers))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    stream = body.write()
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            permit = stream.check_write()
            if permit == 0:
                stream.subscribe().block()
                continue
            stream.write(bytes(view[:permit]))
            view = view[permit:]
    stream.blocking_flush()
    stream.__exit__(None, None, None)
    OutgoingBody.finish(body, None)


class _Fine(http.IncomingHandler):
    def __init__(self, hop_by_hop: bool) -> None:
        self.hop_by_hop = hop_by_hop

    def handle_request(self, request: Request) -> Response:
        headers = {"content-type": "text/plain"}
        if self.hop_by_hop:
            headers["connection"] = "close"
        return Response(200, headers, b"fine\n")
