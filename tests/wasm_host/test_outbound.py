"""The edge_http host interface, both ABIs, against a real HTTP server on 127.0.0.1.

The fetcher here is the simplest real embedding (``http.client``, blocking, on the guest's
thread); the edge node's (through its cache, on its event loop) is tested in
tests/edge_node/test_outbound_node.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.wasm_host.conftest import MakeHandler
from tests.wasm_host.fetcher import BlockingFetcher
from tests.wasm_host.wat import wagi_print
from tests.wasm_host.wat_outbound import REACTOR_FETCH, WAGI_FETCH, WAGI_IMPORTS_ONLY, WAGI_OTHER_IMPORT
from wasm_host import AbiMismatchError, ExecutorConfig, Handler, Limits, WasmExecutor, WasmRequest
from wasm_host.outbound import (
    CURRENT_FETCHER,
    OutboundGrant,
    OutboundLimits,
    OutboundRequest,
    OutboundResponse,
    parse_header_block,
)


class Upstream(BaseHTTPRequestHandler):
    """/hello answers a body; /redirect?to=URL redirects; /slow sleeps; /big is 64 KiB."""

    seen: list[tuple[str, str, dict[str, str]]]

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("location", self.path.removeprefix("/redirect?to="))
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(0.5)
        body = b"x" * 65536 if self.path == "/big" else b"hello from upstream"
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815 - BaseHTTPRequestHandler's naming

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _base(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _grant(*hosts: str, **limits: float) -> OutboundGrant:
    grant = OutboundGrant.of(hosts, OutboundLimits(**limits))  # type: ignore[arg-type]
    assert grant is not None
    return grant


def _make(
    make_handler: MakeHandler, source: str, abi: str, grant: OutboundGrant | None, timeout_s: float
) -> Handler:
    return make_handler(source, abi=abi, limits=Limits(timeout_s=timeout_s), outbound=grant)


def _run(handler: Handler, url: str, fetcher: BlockingFetcher | None, query: str = "") -> tuple[int, bytes]:
    token = CURRENT_FETCHER.set(fetcher)
    try:
        response = handler.handle(WasmRequest(method="POST", path="/f", query=query, body=url.encode()))
    finally:
        CURRENT_FETCHER.reset(token)
    return response.status, response.body


ABIS = ["wagi", "reactor"]


@pytest.mark.parametrize("abi", ABIS)
def test_an_allowed_fetch_reads_status_and_body_in_chunks(
    make_handler: MakeHandler, upstream: ThreadingHTTPServer, abi: str
) -> None:
    handler = _make(
        make_handler, WAGI_FETCH if abi == "wagi" else REACTOR_FETCH, abi, _grant(_base(upstream)), 2.0
    )
    assert handler.calls_out
    status, body = _run(handler, _base(upstream) + "/hello", BlockingFetcher())
    assert (status, body) == (200, b"hello from upstream")
    method, path, headers = upstream.seen[-1]  # type: ignore[attr-defined]
    assert (method, path, headers.get("x-probe")) == ("GET", "/hello", "1")


@pytest.mark.parametrize("abi", ABIS)
def test_a_refused_host_is_an_error_the_guest_sees(
    make_handler: MakeHandler, upstream: ThreadingHTTPServer, abi: str
) -> None:
    handler = _make(
        make_handler,
        WAGI_FETCH if abi == "wagi" else REACTOR_FETCH,
        abi,
        _grant("https://api.example.com"),
        2.0,
    )
    fetcher = BlockingFetcher()
    before = len(upstream.seen)  # type: ignore[attr-defined]
    status, body = _run(handler, _base(upstream) + "/hello", fetcher)
    assert status == 502
    assert body.startswith(b"error 06: http://127.0.0.1:")
    assert b"is not in the module's allowed_outbound_hosts" in body
    assert fetcher.refusals == [(_base(upstream) + "/hello", "not-allowed")]
    assert len(upstream.seen) == before  # type: ignore[attr-defined]


@pytest.mark.parametrize("abi", ABIS)
def test_metadata_addresses_are_refused_before_any_socket(make_handler: MakeHandler, abi: str) -> None:
    handler = _make(make_handler, WAGI_FETCH if abi == "wagi" else REACTOR_FETCH, abi, _grant("*://*:*"), 2.0)
    status, body = _run(handler, "http://169.254.169.254/latest/meta-data/", BlockingFetcher())
    assert status == 502
    assert body.startswith(b"error 07: ")


def test_a_redirect_to_a_refused_host_is_not_followed(
    make_handler: MakeHandler, upstream: ThreadingHTTPServer
) -> None:
    handler = _make(make_handler, WAGI_FETCH, "wagi", _grant(_base(upstream)), 2.0)
    fetcher = BlockingFetcher()
    status, body = _run(handler, _base(upstream) + "/redirect?to=http://evil.example.org/steal", fetcher)
    assert status == 502
    assert body.startswith(b"error 06: http://evil.example.org:80 is not in")
    assert fetcher.refusals == [("http://evil.example.org/steal", "not-allowed")]
    # Within the grant, the redirect is followed (a relative Location too).
    status, body = _run(handler, _base(upstream) + "/redirect?to=/hello", fetcher)
    assert (status, body) == (200, b"hello from upstream")


def test_requests_per_invocation_are_limited(
    make_handler: MakeHandler, upstream: ThreadingHTTPServer
) -> None:
    handler = _make(make_handler, WAGI_FETCH, "wagi", _grant(_base(upstream), max_requests=1), 2.0)
    fetcher = BlockingFetcher()
    assert _run(handler, _base(upstream) + "/hello", fetcher)[0] == 200
    # A redirect is a second request.
    status, body = _run(handler, _base(upstream) + "/redirect?to=/hello", fetcher)
    assert status == 502
    assert body == b"error 08: at most 1 outbound requests per invocation"
    assert fetcher.refusals[-1][1] == "too-many-requests"


def test_bytes_per_invocation_are_limited(make_handler: MakeHandler, upstream: ThreadingHTTPServer) -> None:
    handler = _make(make_handler, WAGI_FETCH, "wagi", _grant(_base(upstream), max_bytes=1000), 2.0)
    status, body = _run(handler, _base(upstream) + "/big", BlockingFetcher())
    assert status == 502
    assert body == b"error 09: the answer exceeds 1000 bytes"


def test_a_fetch_gets_at_most_what_is_left_of_the_deadline(
    make_handler: MakeHandler, upstream: ThreadingHTTPServer
) -> None:
    handler = _make(make_handler, WAGI_FETCH, "wagi", _grant(_base(upstream), request_timeout_s=5.0), 0.2)
    fetcher = BlockingFetcher()
    status, body = _run(handler, _base(upstream) + "/slow", fetcher)
    assert status == 502
    assert body.startswith(b"error 10: ")
    assert 0 < fetcher.timeouts[-1] <= 0.2
    # The per-request timeout applies when it is the shorter one.
    handler = _make(make_handler, WAGI_FETCH, "wagi", _grant(_base(upstream), request_timeout_s=0.05), 2.0)
    _run(handler, _base(upstream) + "/slow", fetcher)
    assert fetcher.timeouts[-1] == 0.05


def test_without_a_fetcher_outbound_http_is_unavailable(
    make_handler: MakeHandler, upstream: ThreadingHTTPServer
) -> None:
    handler = _make(make_handler, WAGI_FETCH, "wagi", _grant(_base(upstream)), 2.0)
    status, body = _run(handler, _base(upstream) + "/hello", None)
    assert (status, body) == (502, b"error 12: this host offers no outbound HTTP")


def test_importing_edge_http_needs_a_grant(make_handler: MakeHandler) -> None:
    with pytest.raises(AbiMismatchError, match="grants no allowed_outbound_hosts"):
        _make(make_handler, WAGI_IMPORTS_ONLY, "wagi", None, 1.0)
    assert _make(make_handler, WAGI_IMPORTS_ONLY, "wagi", _grant("https://api.example.com"), 1.0).calls_out
    with pytest.raises(AbiMismatchError, match="unknown import edge_http::open_socket"):
        _make(make_handler, WAGI_OTHER_IMPORT, "wagi", _grant("https://api.example.com"), 1.0)


def test_a_grant_alone_does_not_make_a_module_call_out(make_handler: MakeHandler) -> None:
    handler = _make(
        make_handler, wagi_print(b"content-type: text/plain\n\nhi"), "wagi", _grant("https://x.org"), 1.0
    )
    assert not handler.calls_out


def test_header_blocks() -> None:
    block = b"Accept: text/plain\r\nHost: evil\nx-a:  1 \ntraceparent: forged\n\n"
    assert parse_header_block(block) == (("accept", "text/plain"), ("x-a", "1"))
    with pytest.raises(ValueError, match="not a 'name: value'"):
        parse_header_block(b"no colon here\n")
    with pytest.raises(ValueError, match="control character"):
        parse_header_block(b"x: a\x01b\n")


def test_the_executor_runs_a_handler_that_calls_out_once_on_its_pool(
    make_handler: MakeHandler, upstream: ThreadingHTTPServer
) -> None:
    handler = _make(make_handler, WAGI_FETCH, "wagi", _grant(_base(upstream)), 2.0)
    executor = WasmExecutor(ExecutorConfig(mode="inline"))
    try:
        assert not executor.runs_inline(handler)
        assert executor.placement(handler) == "thread"
        with pytest.raises(ValueError, match="never inline"):
            executor.try_inline(handler, WasmRequest(method="GET", path="/"))
        fetcher = BlockingFetcher()
        threads: list[str] = []

        async def main() -> tuple[int, bytes]:
            CURRENT_FETCHER.set(fetcher)  # the task's context reaches the worker
            original = fetcher.fetch

            def fetch(request: OutboundRequest, timeout_s: float) -> OutboundResponse:
                threads.append(threading.current_thread().name)
                return original(request, timeout_s)

            fetcher.fetch = fetch  # type: ignore[method-assign]
            response = await executor.handle(
                handler, WasmRequest(method="POST", path="/f", body=(_base(upstream) + "/hello").encode())
            )
            return response.status, response.body

        assert asyncio.run(main()) == (200, b"hello from upstream")
        assert threads
        assert threads[0].startswith("wasm-outbound")
    finally:
        executor.close()
