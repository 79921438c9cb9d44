"""The per-process module library: refusals with reasons, the disk store, one fetch per digest."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from iot_gateway.errors import ModuleRefusedError
from iot_gateway.modules import ModuleLibrary
from tests.control_plane.support import WAT_NO_START, sha, wasm
from tests.iot_gateway.support import SENSOR_STATS
from wasm_host import Limits, WasmEngine


@pytest.fixture
def engine() -> Iterator[WasmEngine]:
    engine = WasmEngine()
    yield engine
    engine.close()


def library(engine: WasmEngine, tmp_path: Path, control_plane: str | None = None) -> ModuleLibrary:
    return ModuleLibrary(
        engine, state_dir=tmp_path, control_plane=control_plane, token="t", limits=Limits(), env={}
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"garbage", "not_wasm"), (b"\0asm\x01\0\0\0\x99", "not_wasm"), (wasm(WAT_NO_START), "abi_mismatch")],
)
def test_modules_that_cannot_run_are_refused_with_a_reason(
    engine: WasmEngine, tmp_path: Path, data: bytes, reason: str
) -> None:
    with pytest.raises(ModuleRefusedError) as refused:
        library(engine, tmp_path).load_bytes(data, name="bad")
    assert refused.value.reason == reason


def test_the_last_good_module_is_kept_on_disk(engine: WasmEngine, tmp_path: Path) -> None:
    first = library(engine, tmp_path)
    module = first.load_file(SENSOR_STATS)
    first.remember("gw-1", module)
    again = library(engine, tmp_path)
    assert again.last_good("gw-1") == (module.digest, "sensor-stats")
    kept = again.load_kept(module.digest, name="sensor-stats")
    assert kept is not None
    assert kept.digest == module.digest
    assert again.last_good("gw-2") is None
    blob = tmp_path / "gateways" / "modules" / f"{module.digest}.wasm"
    blob.write_bytes(b"\0asm tampered")
    assert library(engine, tmp_path).load_kept(module.digest) is None


async def test_a_kept_module_needs_no_control_plane_and_failures_are_not_cached(
    engine: WasmEngine, tmp_path: Path
) -> None:
    store = library(engine, tmp_path)
    module = store.load_file(SENSOR_STATS)
    results = await asyncio.gather(*(store.fetch(module.digest) for _ in range(5)))
    assert {r.digest for r in results} == {module.digest}
    for _ in range(2):  # a failed fetch is forgotten: the next command tries again
        with pytest.raises(ModuleRefusedError) as refused:
            await store.fetch(sha(b"elsewhere"))
        assert refused.value.reason == "fetch_failed"
    await store.close()
