"""Ahead-of-time cache: hits, engine-configuration invalidation, corrupt artefacts, bad wasm."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.wasm_host import wat
from wasm_host import (
    EngineConfig,
    ModuleCache,
    ModuleInvalidError,
    WasmEngine,
    WasmRequest,
    create_handler,
    module_digest,
)

WASM = wat.wagi_print(b"content-type: text/plain\n\ncached").encode()
REQUEST = WasmRequest(method="GET", path="/")


def _works(engine: WasmEngine, cache: ModuleCache) -> None:
    assert create_handler(engine, cache.load(WASM)).handle(REQUEST).body == b"cached"


def test_compile_once_then_hit_disk_then_memory(engine: WasmEngine, tmp_path: Path) -> None:
    first = ModuleCache(engine, tmp_path)
    compiled = first.load(WASM)
    assert compiled.origin == "compiled"
    assert compiled.digest == module_digest(WASM)
    assert first.artefact_path(compiled.digest) is not None
    assert first.load(WASM) is compiled  # in-process table
    assert (first.stats.compiles, first.stats.memory_hits) == (1, 1)

    second = ModuleCache(engine, tmp_path)  # a restarted process
    again = second.load(WASM)
    assert again.origin == "disk"
    assert (second.stats.disk_hits, second.stats.compiles) == (1, 0)
    _works(engine, second)


def test_disk_hit_loads_well_under_a_millisecond(engine: WasmEngine, tmp_path: Path) -> None:
    geo_hello = Path(__file__).resolve().parents[2] / "handlers" / "geo-hello" / "geo_hello.wasm"
    wasm = geo_hello.read_bytes() if geo_hello.exists() else WASM
    ModuleCache(engine, tmp_path).load(wasm)
    timings = []
    for _ in range(20):
        cache = ModuleCache(engine, tmp_path)
        start = time.perf_counter()
        assert cache.load(wasm).origin == "disk"
        timings.append(time.perf_counter() - start)
    timings.sort()
    assert timings[len(timings) // 2] < 0.001


def test_engine_configuration_change_misses(tmp_path: Path) -> None:
    with WasmEngine(EngineConfig(opt_level="speed", pool_total_instances=4)) as fast:
        ModuleCache(fast, tmp_path).load(WASM)
        fingerprint = fast.fingerprint
    with WasmEngine(EngineConfig(opt_level="none", pool_total_instances=4)) as other:
        assert other.fingerprint != fingerprint
        cache = ModuleCache(other, tmp_path)
        assert cache.load(WASM).origin == "compiled"
        _works(other, cache)
    with WasmEngine(EngineConfig(opt_level="speed", pool_total_instances=4)) as same:
        assert same.fingerprint == fingerprint
        assert ModuleCache(same, tmp_path).load(WASM).origin == "disk"


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "trailer"])
def test_corrupt_artefact_is_detected_and_recompiled(engine: WasmEngine, tmp_path: Path, damage: str) -> None:
    digest = ModuleCache(engine, tmp_path).load(WASM).digest
    path = ModuleCache(engine, tmp_path).artefact_path(digest)
    assert path is not None
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF  # wasmtime alone would load this silently
    elif damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "empty":
        data = bytearray()
    else:
        data[-1] ^= 0x01
    path.write_bytes(bytes(data))

    cache = ModuleCache(engine, tmp_path)
    compiled = cache.load(WASM)
    assert compiled.origin == "compiled"
    assert cache.stats.corrupt == 1
    _works(engine, cache)
    assert ModuleCache(engine, tmp_path).load(WASM).origin == "disk"  # healed on disk


def test_memory_only_cache(engine: WasmEngine) -> None:
    cache = ModuleCache(engine)
    assert cache.artefact_path("ab" * 32) is None
    assert cache.load(WASM).origin == "compiled"
    assert cache.load(WASM).origin == "compiled"  # same object from the table
    assert cache.stats.memory_hits == 1


@pytest.mark.parametrize(
    ("wasm", "reason"),
    [
        (b"\x00asm\x01\x00\x00\x00\x01\xff", "unexpected end"),
        (b"\x00asm\x02\x00\x00\x00", "unknown binary version"),
        (b"(module (func (result i32)))", "type mismatch"),
        (b"definitely not wasm", "expected"),
    ],
)
def test_invalid_wasm_is_a_clear_error(engine: WasmEngine, tmp_path: Path, wasm: bytes, reason: str) -> None:
    with pytest.raises(ModuleInvalidError) as caught:
        ModuleCache(engine, tmp_path).load(wasm)
    assert caught.value.digest == module_digest(wasm)
    assert reason in caught.value.reason
    assert caught.value.digest[:12] in str(caught.value)


def test_unwritable_cache_directory_still_loads(engine: WasmEngine, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = ModuleCache(engine, blocker)
    assert cache.load(WASM).origin == "compiled"
    _works(engine, cache)
