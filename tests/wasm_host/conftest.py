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

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"

MakeHandler = Callable[..., Handler]


@pytest.fixture(scope="module")
def engine() -> Iterator[WasmEngine]:
    """A pooling engine with a short epoch tick so deadline tests stay quick."""
    with WasmEngine(EngineConfig(epoch_tick_s=0.002, pool_total_instances=64)) as running:
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
    ) -> Handler:
        wasm = source.encode() if isinstance(source, str) else source
        return create_handler(engine, cache.load(wasm), abi=abi, limits=limits, env=env, name=name)

    return make
