"""Components' outbound HTTP (``wasi:http/outgoing-handler``) under edge_http's rules.

The guest is handlers/components/geo-weather-js (componentize-js: StarlingMonkey's ``fetch``
over ``outgoing-handler``), and the Spin SDK for Python's ``http.send`` in the misbehave
kit. The fetcher is the simplest real embedding (``http.client``, blocking, on the guest's
thread) against a real HTTP server on 127.0.0.1, and stands in for the node in one way
only: a ``self`` target goes to that server, as the node sends it to the route's origin.
The node's own fetcher is tested in tests/edge_node/test_outbound_node.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.wasm_host.fetcher import BlockingFetcher
from wasm_host import (
    DeadlineExceededError,
    EngineConfig,
    ExecutorConfig,
    Limits,
    WasmEngine,
    WasmExecutor,
    WasmRequest,
    WasmResponse,
)
from wasm_host.component_cache import CompiledComponent, ComponentCache
from wasm_host.component_handler import HttpComponentHandler, OutboundNotAllowedError
from wasm_host.component_outgoing import error_code
from wasm_host.config import MiB
from wasm_host.outbound import (
    CURRENT_FETCHER,
    OutboundError,
    OutboundGrant,
    OutboundLimits,
    OutboundRequest,
    OutboundResponse,
)

COMPONENTS = Path(__file__).resolve().parents[2] / "handlers" / "components"
LIMITS = Limits(memory_bytes=64 * MiB, timeout_s=5.0, max_output_bytes=4 * MiB)
WEATHER = "geo-weather-js"


class Upstream(BaseHTTPRequestHandler):
    """/shop/weather?country=XX answers JSON; /hello a body; /redirect?to=URL redirects;
    /slow sleeps a second; /big is 64 KiB."""

    def do_GET(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("location", self.path.removeprefix("/redirect?to="))
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(1.0)
        body, kind = b"hello from upstream", "text/plain"
        if self.path.startswith("/shop/weather?country="):
            country = self.path.rpartition("=")[2]
            body, kind = json.dumps({"country": country, "sky": "sunny"}).encode(), "application/json"
        elif self.path == "/big":
            body = b"x" * 65536
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # /slow's client gave up
            self.wfile.write(body)

    def do_POST(self) -> None:
        """Echoes the request's method, content type and body."""
        size = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(size)
        self.server.seen.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        answer = f"{self.command} {self.headers.get('content-type')} {body.decode()}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

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


def _seen(server: ThreadingHTTPServer) -> list[tuple[str, str, dict[str, str]]]:
    seen: list[tuple[str, str, dict[str, str]]] = server.seen  # type: ignore[attr-defined]
    return seen


def _base(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


# One engine and compiled components for the module: a JS component compiles in ~10 s, a
# Python one in ~20 s (pytest's cache keeps the artefacts between runs when it is enabled).


@pytest.fixture(scope="module")
def component_engine() -> Iterator[WasmEngine]:
    with WasmEngine(EngineConfig(epoch_tick_s=0.002, pool_total_instances=64)) as running:
        yield running


@pytest.fixture(scope="module")
def compiled(
    component_engine: WasmEngine, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], CompiledComponent]:
    cache = getattr(pytestconfig, "cache", None)
    directory = cache.mkdir("wasm-components") if cache is not None else tmp_path_factory.mktemp("components")
    components = ComponentCache(component_engine, directory)

    def load(app: str) -> CompiledComponent:
        return components.load_component_file(COMPONENTS / app / f"{app.replace('-', '_')}.wasm")

    return load


MakeComponent = Callable[..., HttpComponentHandler]


@pytest.fixture(scope="module")
def make(component_engine: WasmEngine, compiled: Callable[[str], CompiledComponent]) -> MakeComponent:
    def build(app: str, grant: OutboundGrant | None, limits: Limits = LIMITS) -> HttpComponentHandler:
        return HttpComponentHandler(component_engine, compiled(app), limits=limits, name=app, outbound=grant)

    return build


def _grant(*hosts: str, **limits: Any) -> OutboundGrant:
    grant = OutboundGrant.of(hosts, OutboundLimits(**limits))
    assert grant is not None
    return grant


def _run(
    handler: HttpComponentHandler,
    fetcher: BlockingFetcher | None,
    query: str = "",
    country: str = "KR",
    path: str = "/weather",
) -> WasmResponse:
    token = CURRENT_FETCHER.set(fetcher)
    try:
        request = WasmRequest(
            method="GET",
            path=path,
            query=query,
            headers=(("cf-ipcountry", country), ("x-edge-region", "ap-northeast-2")),
            server_name="edge.test",
        )
        return handler.handle(request)
    finally:
        CURRENT_FETCHER.reset(token)


def _answer(response: WasmResponse) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(response.body)
    return answer


# allowed ---------------------------------------------------------------------------------------


def test_the_js_twin_of_geo_weather_fetches_its_countrys_weather_from_self(
    make: MakeComponent, upstream: ThreadingHTTPServer
) -> None:
    handler = make(WEATHER, _grant("http://self", max_requests=2, request_timeout_s=1.0))
    assert handler.calls_out
    fetcher = BlockingFetcher(origin=("127.0.0.1", upstream.server_address[1]))
    response = _run(handler, fetcher, country="JP")
    assert response.status == 200
    assert response.header("content-type") == "application/json"
    assert response.header("vary") == "cf-ipcountry"
    assert _answer(response) == {
        "country": "JP",
        "region": "ap-northeast-2",
        "upstream_status": 200,
        "upstream_cache": "NONE",
        "weather": {"country": "JP", "sky": "sunny"},
    }
    assert fetcher.fetched == ["http://self/shop/weather?country=JP"]
    assert _seen(upstream)[-1][:2] == ("GET", "/shop/weather?country=JP")
    # The grant's per-request timeout, as what is left of the 5 s deadline is longer.
    assert fetcher.timeouts == [1.0]
    assert fetcher.refusals == []


def test_any_allowed_url_and_its_redirects_within_the_grant(
    make: MakeComponent, upstream: ThreadingHTTPServer
) -> None:
    handler = make(WEATHER, _grant(_base(upstream)))
    fetcher = BlockingFetcher()
    answer = _answer(_run(handler, fetcher, f"url={_base(upstream)}/hello"))
    assert (answer["upstream_status"], answer["body"]) == (200, "hello from upstream")
    # The host follows the redirect (a relative Location too); the guest sees the end.
    answer = _answer(_run(handler, fetcher, f"url={_base(upstream)}/redirect?to=/hello"))
    assert (answer["upstream_status"], answer["body"]) == (200, "hello from upstream")
    assert fetcher.fetched[-2:] == [f"{_base(upstream)}/redirect?to=/hello", f"{_base(upstream)}/hello"]


def test_a_request_body_and_headers_reach_the_upstream(
    make: MakeComponent, upstream: ThreadingHTTPServer
) -> None:
    """The body is written to the request's ``outgoing-body`` after ``handle`` (as the WASI
    0.2 protocol lets a guest do): the host sends once the guest finished it."""
    handler = make(WEATHER, _grant(_base(upstream)))
    fetcher = BlockingFetcher()
    answer = _answer(_run(handler, fetcher, f"url={_base(upstream)}/echo&body=hello%20body"))
    assert answer["body"] == "POST text/plain;charset=UTF-8 hello body"
    method, path, headers = _seen(upstream)[-1]
    assert (method, path, headers.get("accept")) == ("POST", "/echo", "application/json")


def test_a_request_body_over_the_byte_budget_is_refused(
    make: MakeComponent, upstream: ThreadingHTTPServer
) -> None:
    handler = make(WEATHER, _grant(_base(upstream), max_bytes=10))
    fetcher = BlockingFetcher()
    response = _run(handler, fetcher, f"url={_base(upstream)}/echo&body={'x' * 64}")
    assert response.status == 502
    assert fetcher.refusals == [(f"{_base(upstream)}/echo", "too-many-bytes")]
    assert fetcher.fetched == []


def test_the_spin_python_sdk_sends_through_the_same_host(make: MakeComponent) -> None:
    """misbehave's /outbound does ``http.send(Request("GET", "http://example.com/"))`` and
    goes on to answer ``fine``: with a grant the request reaches the fetcher."""
    responses: list[str] = []

    class Recording(BlockingFetcher):
        def fetch(self, request: OutboundRequest, timeout_s: float) -> OutboundResponse:
            responses.append(request.target.url)
            return OutboundResponse(status=200, headers=(("content-type", "text/plain"),), body=b"ok")

    handler = make("misbehave", _grant("http://example.com"))
    response = _run(handler, Recording(), path="/outbound")
    assert (response.status, response.body) == (200, b"fine\n")
    assert responses == ["http://example.com/"]


# refused -----------------------------------------------------------------------------------------


def test_a_host_outside_the_grant_is_an_error_the_guest_sees_and_nothing_is_fetched(
    make: MakeComponent, upstream: ThreadingHTTPServer
) -> None:
    handler = make(WEATHER, _grant("http://self"))
    fetcher = BlockingFetcher()
    before = len(_seen(upstream))
    url = f"{_base(upstream)}/hello"
    response = _run(handler, fetcher, f"url={url}")
    assert response.status == 502
    assert _answer(response)["error"] == "the weather service cannot be reached"
    assert fetcher.refusals == [(url, "not-allowed")]
    assert fetcher.fetched == []
    assert len(_seen(upstream)) == before


def test_metadata_addresses_are_refused_whatever_the_grant(make: MakeComponent) -> None:
    fetcher = BlockingFetcher()
    response = _run(make(WEATHER, _grant("*://*:*")), fetcher, "url=http://169.254.169.254/latest/meta-data/")
    assert response.status == 502
    assert fetcher.refusals == [("http://169.254.169.254/latest/meta-data/", "blocked-address")]
    assert fetcher.fetched == []


def test_a_redirect_out_of_the_grant_is_not_followed(
    make: MakeComponent, upstream: ThreadingHTTPServer
) -> None:
    fetcher = BlockingFetcher()
    url = f"{_base(upstream)}/redirect?to=http://evil.example.org/steal"
    response = _run(make(WEATHER, _grant(_base(upstream))), fetcher, f"url={url}")
    assert response.status == 502
    assert fetcher.refusals == [("http://evil.example.org/steal", "not-allowed")]
    assert fetcher.fetched == [url]


def test_without_a_grant_outbound_http_is_refused_with_a_clear_error(make: MakeComponent) -> None:
    for app in ("misbehave", WEATHER):
        handler = make(app, None)
        assert not handler.calls_out
        with pytest.raises(OutboundNotAllowedError, match="manifest grants no allowed_outbound_hosts"):
            _run(handler, BlockingFetcher(), path="/weather" if app == WEATHER else "/outbound")


# limits --------------------------------------------------------------------------------------------


def test_requests_per_run_are_limited_and_each_run_has_its_own_budget(
    make: MakeComponent, upstream: ThreadingHTTPServer
) -> None:
    handler = make(WEATHER, _grant(_base(upstream), max_requests=1))
    fetcher = BlockingFetcher()
    for _ in range(2):  # one request per run, run after run
        assert _answer(_run(handler, fetcher, f"url={_base(upstream)}/hello"))["upstream_status"] == 200
    # A redirect is a second request.
    response = _run(handler, fetcher, f"url={_base(upstream)}/redirect?to=/hello")
    assert response.status == 502
    assert fetcher.refusals == [(f"{_base(upstream)}/hello", "too-many-requests")]


def test_bytes_per_run_are_limited(make: MakeComponent, upstream: ThreadingHTTPServer) -> None:
    fetcher = BlockingFetcher()
    response = _run(
        make(WEATHER, _grant(_base(upstream), max_bytes=1000)), fetcher, f"url={_base(upstream)}/big"
    )
    assert response.status == 502
    assert fetcher.fetched == [f"{_base(upstream)}/big"]


def test_the_runs_deadline_bounds_a_slow_upstream(make: MakeComponent, upstream: ThreadingHTTPServer) -> None:
    limits = Limits(memory_bytes=64 * MiB, timeout_s=0.3)
    handler = make(WEATHER, _grant(_base(upstream), request_timeout_s=5.0), limits)
    fetcher = BlockingFetcher()
    started = time.monotonic()
    try:
        status = _run(handler, fetcher, f"url={_base(upstream)}/slow").status
    except DeadlineExceededError:
        status = 504  # the guest was stopped as soon as the host call returned past the deadline
    assert status in {502, 504}
    assert time.monotonic() - started < 0.9  # the upstream takes 1 s
    assert 0 < fetcher.timeouts[-1] <= 0.3


def test_the_executor_runs_a_component_that_calls_out_once_on_its_pool(
    make: MakeComponent, upstream: ThreadingHTTPServer
) -> None:
    handler = make(WEATHER, _grant("http://self"))
    executor = WasmExecutor(ExecutorConfig(mode="inline"))
    fetcher = BlockingFetcher(origin=("127.0.0.1", upstream.server_address[1]))

    async def main() -> WasmResponse:
        CURRENT_FETCHER.set(fetcher)  # the task's context reaches the worker
        request = WasmRequest(method="GET", path="/weather", headers=(("cf-ipcountry", "KR"),))
        return await executor.handle(handler, request)

    try:
        assert not executor.runs_inline(handler)
        assert executor.placement(handler) == "thread"
        response = asyncio.run(main())
    finally:
        executor.close()
    assert response.status == 200
    assert _answer(response)["weather"] == {"country": "KR", "sky": "sunny"}
    assert fetcher.fetched == ["http://self/shop/weather?country=KR"]  # run once, not cut and re-run


# error codes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "tag", "payload"),
    [
        ("not-allowed", "HTTP-request-denied", None),
        ("too-many-requests", "HTTP-request-denied", None),
        ("blocked-address", "destination-IP-prohibited", None),
        ("invalid-url", "HTTP-request-URI-invalid", None),
        ("timeout", "connection-read-timeout", None),
        ("too-many-bytes", "HTTP-response-body-size", None),
        ("too-many-redirects", "loop-detected", None),
        ("failed", "internal-error", "why"),
    ],
)
def test_each_refusal_is_an_error_code(reason: str, tag: str, payload: str | None) -> None:
    code = error_code(OutboundError(reason, "why"))
    assert (code.tag, code.payload) == (tag, payload)
