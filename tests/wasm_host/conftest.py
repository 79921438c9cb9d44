"""Fixtures for wasm_host tests: one engine per test module, loaders for WAT and real modules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wasm_host import (
    Abi,
    EngineConfig,
    Handler,
    Limits,
    ModuleCache,
    WasmEngine,
    create_handler,
)
from wasm_host.outbound import OutboundGrant
from wasm_host.wasi_cgi import LIBRARY

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"

MakeHandler = Callable[..., Handler]


@pytest.fixture(scope="module", params=["native-wasi", "wasmtime-wasi"])
def engine(request: pytest.FixtureRequest) -> Iterator[WasmEngine]:
    """A pooling engine with a short epoch tick so deadline tests stay quick.

    Every test runs twice: WAGI commands on wasi_cgi.c's WASI, then on wasmtime's, which
    must behave the same (native-wasi is skipped where the library is not built).
    """
    native = request.param == "native-wasi"
    if native and not LIBRARY.exists():
        pytest.skip("wasm_host/_wasi_cgi.so is not built (no C compiler, or EDGECDN_NO_EXTENSIONS)")
    config = EngineConfig(epoch_tick_s=0.002, pool_total_instances=64)
    with WasmEngine(config, native_wasi=native) as running:
        assert (running.native_wasi is not None) == native
        yield running


@pytest.fixture
def cache(engine: WasmEngine, tmp_path: Path) -> ModuleCache:
    """A module cache with its own artefact directory."""
    return ModuleCache(engine, tmp_path / "modules")


@pytest.fixture
def make_handler(engine: WasmEngine, cache: ModuleCache) -> MakeHandler:
    """Build a handler from WAT text or wasm bytes: ``make_handler(src, abi=..., limits=...)``."""

    def make(
        source: str | bytes,
        *,
        abi: Abi = "wagi",
        limits: Limits | None = None,
        env: dict[str, str] | None = None,
        name: str = "test",
        outbound: OutboundGrant | None = None,
    ) -> Handler:
        wasm = source.encode() if isinstance(source, str) else source
        return create_handler(
            engine, cache.load(wasm), abi=abi, limits=limits, env=env, name=name, outbound=outbound
        )

    return make
