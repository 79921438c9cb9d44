"""The wasi-http ABI: real Spin SDK (Python) and componentize-js components through our host.

The components are the committed builds of handlers/components/ (build.sh there). A Python one is
~37 MB and takes ~15 s to compile on two cores, so compiled artefacts are kept in pytest's
cache directory between runs (the component cache checks them like any artefact).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import wasmtime

from wasm_host import (
    AbiMismatchError,
    DeadlineExceededError,
    EngineConfig,
    ExecutorConfig,
    Handler,
    InstanceLimitError,
    InvalidOutputError,
    Limits,
    MemoryLimitError,
    OutputTooLargeError,
    WasmEngine,
    WasmExecutor,
    WasmRequest,
    WasmTrapError,
)
from wasm_host.component_cache import CompiledComponent, ComponentCache
from wasm_host.component_handler import (
    HttpComponentHandler,
    OutboundNotAllowedError,
    run_http_component,
)
from wasm_host.config import MiB

COMPONENTS = Path(__file__).resolve().parents[2] / "handlers" / "components"
LIMITS = Limits(memory_bytes=64 * MiB, timeout_s=5.0, max_output_bytes=4 * MiB)

MakeComponent = Callable[..., HttpComponentHandler]


@pytest.fixture(scope="module")
def component_engine() -> Iterator[WasmEngine]:
    with WasmEngine(EngineConfig(epoch_tick_s=0.002, pool_total_instances=64)) as running:
        yield running


@pytest.fixture(scope="module")
def component_cache(
    component_engine: WasmEngine, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> ComponentCache:
    # pytest's cache keeps the artefacts between runs; without it (-p no:cacheprovider) they
    # are compiled once per run.
    cache = getattr(pytestconfig, "cache", None)
    directory = cache.mkdir("wasm-components") if cache is not None else tmp_path_factory.mktemp("components")
    return ComponentCache(component_engine, directory)


@pytest.fixture(scope="module")
def compiled(component_cache: ComponentCache) -> Callable[[str], CompiledComponent]:
    def load(app: str) -> CompiledComponent:
        return component_cache.load_component_file(COMPONENTS / app / f"{app.replace('-', '_')}.wasm")

    return load


@pytest.fixture(scope="module")
def make(component_engine: WasmEngine, compiled: Callable[[str], CompiledComponent]) -> MakeComponent:
    def build(app: str, limits: Limits = LIMITS, env: dict[str, str] | None = None) -> HttpComponentHandler:
        return HttpComponentHandler(component_engine, compiled(app), limits=limits, env=env, name=app)

    return build


def get(
    path: str, query: str = "", headers: tuple[tuple[str, str], ...] = (), method: str = "GET"
) -> WasmRequest:
    return WasmRequest(method=method, path=path, query=query, headers=headers, server_name="edge.test")


# geo greeting ------------------------------------------------------------------------------


GEO_APPS = pytest.mark.parametrize("app", ["geo-greeting", "geo-greeting-js"])


@GEO_APPS
@pytest.mark.parametrize(
    ("country", "greeting"),
    [("KR", "안녕하세요"), ("JP", "こんにちは"), ("US", "Hello"), ("kr", "안녕하세요"), (None, "Hello")],
)
def test_geo_greeting_answers_in_the_visitors_language(
    make: MakeComponent, app: str, country: str | None, greeting: str
) -> None:
    """The same logic built with Spin's Python SDK and with componentize-js (wasi:http@0.2.10)."""
    headers = (("cf-ipcountry", country),) if country is not None else ()
    response = make(app).handle(get("/hello", "lang=auto&x=1", headers))
    assert response.status == 200
    assert response.body.decode() == f"{greeting} from GET /hello?lang=auto&x=1\n"
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert response.header("x-country") == (country.upper() if country else "unknown")
    # The SDK's content-length matched the body, so it was checked and left to the server.
    assert response.header("content-length") is None


@GEO_APPS
@pytest.mark.parametrize("method", ["DELETE", "PATCH", "PROPFIND"])
def test_the_method_reaches_the_component_including_extension_methods(
    make: MakeComponent, app: str, method: str
) -> None:
    response = make(app).handle(get("/m", method=method))
    assert response.body.decode() == f"Hello from {method} /m\n"


def test_run_http_component_serves_one_request(
    component_engine: WasmEngine, compiled: Callable[[str], CompiledComponent]
) -> None:
    response = run_http_component(
        component_engine, compiled("geo-greeting"), get("/", headers=(("CF-IPCountry", "JP"),))
    )
    assert response.body.decode().startswith("こんにちは")


# request in, streamed response out ---------------------------------------------------------------


def test_headers_body_and_query_reach_the_component(make: MakeComponent) -> None:
    body = bytes(range(256)) * 40
    request = WasmRequest(
        method="POST",
        path="/echo",
        query="q=1&r=%20",
        headers=(
            ("Content-Type", "application/octet-stream"),
            ("cf-ipcountry", "KR"),
            ("X-Twice", "a"),
            ("x-twice", "b"),
        ),
        body=body,
    )
    lines = make("misbehave").handle(request).body.decode().splitlines()
    assert lines[:4] == [
        "method POST",
        "target /echo?q=1&r=%20",
        f"body-length {len(body)}",
        f"body-head {body[:16]!r}",
    ]
    # Names arrive in lower case, in order, repeats kept.
    assert lines[4:] == [
        "header content-type: application/octet-stream",
        "header cf-ipcountry: KR",
        "header x-twice: a",
        "header x-twice: b",
    ]


@pytest.mark.parametrize("size", [0, 1, 65536, 1_000_003])
def test_a_body_written_in_chunks_comes_out_whole(make: MakeComponent, size: int) -> None:
    response = make("misbehave").handle(get("/stream", f"size={size}"))
    assert response.status == 200
    assert response.header("x-size") == str(size)
    assert len(response.body) == size
    assert response.body == (bytes(range(256)) * (size // 256 + 1))[:size]


def test_a_body_over_the_output_limit_is_refused(make: MakeComponent) -> None:
    handler = make("misbehave", Limits(memory_bytes=64 * MiB, timeout_s=5.0, max_output_bytes=100_000))
    with pytest.raises(OutputTooLargeError) as caught:
        handler.handle(get("/stream", "size=200000"))
    assert caught.value.limit_bytes == 100_000


# failures --------------------------------------------------------------------------------------


def test_a_component_that_traps_is_a_trap_and_poisons_nothing(make: MakeComponent) -> None:
    handler = make("misbehave")
    with pytest.raises(WasmTrapError) as caught:
        handler.handle(get("/trap"))
    assert caught.value.kind == "unreachable"
    assert handler.handle(get("/fine")).body == b"fine\n"
    assert handler.handle(get("/stream", "size=70000")).body == (bytes(range(256)) * 274)[:70000]


def test_a_component_that_loops_is_stopped_at_its_deadline(make: MakeComponent) -> None:
    handler = make("misbehave", Limits(memory_bytes=64 * MiB, timeout_s=0.2))
    with pytest.raises(DeadlineExceededError) as caught:
        handler.handle(get("/loop"))
    assert caught.value.timeout_s == 0.2
    assert handler.handle(get("/fine")).status == 200


def test_a_component_that_runs_out_of_memory_hits_the_memory_limit(make: MakeComponent) -> None:
    with pytest.raises(MemoryLimitError) as caught:
        make("misbehave", Limits(memory_bytes=48 * MiB, timeout_s=5.0)).handle(get("/oom"))
    assert caught.value.limit_bytes == 48 * MiB


def test_a_component_larger_than_its_memory_cap_does_not_start(make: MakeComponent) -> None:
    # A Python component's memory starts at 14 MiB (224 pages).
    with pytest.raises(MemoryLimitError, match="minimum size"):
        make("geo-greeting", Limits(memory_bytes=8 * MiB)).handle(get("/"))


def test_outgoing_http_is_refused_with_a_clear_error(make: MakeComponent) -> None:
    with pytest.raises(OutboundNotAllowedError, match="grants no allowed_outbound_hosts"):
        make("misbehave").handle(get("/outbound"))


def test_a_component_that_returns_without_answering_gave_invalid_output(make: MakeComponent) -> None:
    with pytest.raises(InvalidOutputError, match="without setting a response"):
        make("misbehave").handle(get("/silent"))


def test_a_hop_by_hop_response_header_is_refused(make: MakeComponent) -> None:
    with pytest.raises(InvalidOutputError, match="hop-by-hop header 'connection'"):
        make("misbehave").handle(get("/hop-by-hop"))


def test_a_blocking_write_over_4096_bytes_breaks_the_wasi_contract(make: MakeComponent) -> None:
    # wasmtime-wasi traps there too: what fails here would fail on Spin or wasmtime serve.
    with pytest.raises(WasmTrapError, match="at most 4096 per call"):
        make("misbehave").handle(get("/big-write"))


def test_the_granted_environment_is_checked(make: MakeComponent) -> None:
    with pytest.raises(ValueError, match="set by the host"):
        make("geo-greeting", env={"HTTP_HOST": "x"})


def test_a_component_without_incoming_handler_is_an_abi_mismatch(
    component_engine: WasmEngine, tmp_path: Path
) -> None:
    empty = ComponentCache(component_engine, tmp_path).load_component(bytes(wasmtime.wat2wasm("(component)")))
    with pytest.raises(AbiMismatchError, match="wasi:http/incoming-handler"):
        HttpComponentHandler(component_engine, empty, limits=LIMITS)


# concurrency -------------------------------------------------------------------------------------


def test_concurrent_requests_each_get_their_own_answer(make: MakeComponent) -> None:
    """Each request's resources live in its thread's state: no answer crosses to another."""
    geo = make("geo-greeting")
    misbehave = make("misbehave")
    countries = {"KR": "안녕하세요", "JP": "こんにちは", "FR": "Hello"}

    def one(i: int) -> str:
        if i % 4 == 3:
            try:
                misbehave.handle(get("/trap"))
            except WasmTrapError as exc:
                return exc.kind
            return "no trap"
        country = list(countries)[i % 3]
        return geo.handle(get(f"/r{i}", headers=(("cf-ipcountry", country),))).body.decode()

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(one, range(24)))
    for i, answer in enumerate(answers):
        if i % 4 == 3:
            assert answer == "unreachable"
        else:
            assert answer == f"{countries[list(countries)[i % 3]]} from GET /r{i}\n"


def test_the_executor_serves_a_component_handler(make: MakeComponent) -> None:
    """A component handler is a ``Handler``: the edge node's executor runs it as it runs modules.

    A Python component takes milliseconds, more than the inline slice: the first request is
    cut on the event loop and run again on the pool, which is safe (a fresh instance each).
    """
    handler: Handler = make("geo-greeting")
    executor = WasmExecutor(ExecutorConfig())

    async def serve() -> list[str]:
        answers = []
        for country in ("KR", "JP", "KR"):
            response = await executor.handle(handler, get("/", headers=(("cf-ipcountry", country),)))
            answers.append(response.body.decode().split()[0])
        return answers

    try:
        assert asyncio.run(serve()) == ["안녕하세요", "こんにちは", "안녕하세요"]
        assert executor.placement(handler) == "thread"
    finally:
        executor.close()


def test_a_full_instance_pool_is_an_instance_limit(component_cache: ComponentCache) -> None:
    """A component takes several core instances from the pool; with too few slots a request
    is an ``InstanceLimitError`` (the node answers 503), not a trap."""
    with WasmEngine(EngineConfig(epoch_tick_s=0.002, pool_total_instances=2)) as tiny:
        directory = component_cache.artefact_path("x")
        assert directory is not None
        cache = ComponentCache(tiny, directory.parent.parent)
        small = cache.load_component_file(COMPONENTS / "geo-greeting-js" / "geo_greeting_js.wasm")
        with pytest.raises(InstanceLimitError, match="concurrent limit"):
            HttpComponentHandler(tiny, small, limits=LIMITS).handle(get("/"))
