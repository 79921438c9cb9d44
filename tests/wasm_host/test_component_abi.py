"""``wasi-http`` as the host's third ABI: the factory's choice, the cache's, and compiling once.

A component and a core module are told apart by their preamble; each ABI takes only its
kind, with an error that says which ABI the other kind needs. Processes that share an
artefact directory compile a module once: the first holds ``<digest>.lock`` while it
compiles, the others wait and load its artefact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wasm_host import AbiMismatchError, EngineConfig, Limits, WasmEngine, WasmRequest, create_handler
from wasm_host.cache import MODULE, CompiledModule, ModuleCache
from wasm_host.component_cache import CompiledComponent, ComponentCache, is_component
from wasm_host.component_handler import HttpComponentHandler
from wasm_host.config import MiB

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
GEO_JS = HANDLERS / "components" / "geo-greeting-js" / "geo_greeting_js.wasm"
GEO_HELLO = HANDLERS / "geo-hello" / "geo_hello.wasm"


@pytest.fixture(scope="module")
def engine() -> Iterator[WasmEngine]:
    with WasmEngine(EngineConfig(pool_total_instances=16)) as running:
        yield running


@pytest.fixture(scope="module")
def cache(
    engine: WasmEngine, pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> ComponentCache:
    store = getattr(pytestconfig, "cache", None)  # kept between runs, as test_component_http's
    directory = store.mkdir("wasm-components") if store is not None else tmp_path_factory.mktemp("components")
    return ComponentCache(engine, directory)


def test_the_preamble_tells_a_component_from_a_module(cache: ComponentCache) -> None:
    component, module = GEO_JS.read_bytes(), GEO_HELLO.read_bytes()
    assert is_component(component)
    assert not is_component(module)
    assert isinstance(cache.load_any(component), CompiledComponent)
    assert isinstance(cache.load_any(module), CompiledModule)


def test_wasi_http_runs_a_component_and_refuses_a_module(engine: WasmEngine, cache: ComponentCache) -> None:
    component = cache.load_any(GEO_JS.read_bytes())
    handler = create_handler(
        engine, component, abi="wasi-http", limits=Limits(memory_bytes=64 * MiB, timeout_s=5)
    )
    assert isinstance(handler, HttpComponentHandler)
    assert (handler.abi, handler.calls_out) == ("wasi-http", False)
    answer = handler.handle(
        WasmRequest(
            method="GET", path="/greeting", query="", headers=(("cf-ipcountry", "JP"),), body=b"",
            remote_addr="127.81.0.1", server_name="edge.local", server_port=80,
            matched_route="/greeting", full_url="http://edge.local/greeting",
        )
    )  # fmt: skip
    assert answer.body.decode().startswith("こんにちは")
    with pytest.raises(AbiMismatchError, match="a core module, not a component"):
        create_handler(engine, cache.load_any(GEO_HELLO.read_bytes()), abi="wasi-http")


@pytest.mark.parametrize("abi", ["wagi", "reactor"])
def test_the_core_abis_refuse_a_component_naming_wasi_http(
    engine: WasmEngine, cache: ComponentCache, abi: str
) -> None:
    with pytest.raises(AbiMismatchError, match="a component: declare it with abi = 'wasi-http'"):
        create_handler(engine, cache.load_any(GEO_JS.read_bytes()), abi=abi)  # type: ignore[arg-type]


def test_an_unknown_abi_is_a_value_error(engine: WasmEngine, cache: ComponentCache) -> None:
    with pytest.raises(ValueError, match="expected one of wagi, reactor, wasi-http"):
        create_handler(engine, cache.load_any(GEO_HELLO.read_bytes()), abi="wasi-nn")  # type: ignore[arg-type]


def test_processes_sharing_a_directory_compile_once(engine: WasmEngine, tmp_path: Path) -> None:
    """While one cache compiles a digest, another that misses waits for it, then loads the
    artefact from disk instead of compiling it a second time."""
    wasm = GEO_HELLO.read_bytes()
    first, second = ModuleCache(engine, tmp_path), ModuleCache(engine, tmp_path)
    digest = first.load(wasm).digest
    first.artefact_path(digest).unlink()  # type: ignore[union-attr]
    first.forget(digest)
    loaded: list[CompiledModule] = []
    with first.compiling(digest):
        waiting = threading.Thread(target=lambda: loaded.append(second.load(wasm)))
        waiting.start()
        time.sleep(0.3)
        assert waiting.is_alive(), "the second load did not wait for the first compile"
        first._store(digest, first._compile(digest, wasm, MODULE), MODULE)  # what load does, locked
    waiting.join(timeout=10)
    assert [compiled.origin for compiled in loaded] == ["disk"]
    assert (second.stats.compiles, second.stats.disk_hits) == (0, 1)


def test_a_memory_cap_past_the_pool_slot_is_refused_as_for_modules(
    engine: WasmEngine, cache: ComponentCache
) -> None:
    slot = engine.config.pool_max_memory_bytes
    with pytest.raises(ValueError, match="exceeds the engine's pool slot"):
        create_handler(
            engine, cache.load_any(GEO_JS.read_bytes()), abi="wasi-http", limits=Limits(memory_bytes=slot + 1)
        )
