"""Every way a guest can misbehave maps to its own exception, and the host keeps serving."""

from __future__ import annotations

import time

import pytest

from tests.wasm_host import wat
from tests.wasm_host.conftest import MakeHandler
from wasm_host import (
    DeadlineExceededError,
    EngineClosedError,
    EngineConfig,
    InstanceLimitError,
    Limits,
    MemoryLimitError,
    ModuleCache,
    OutputTooLargeError,
    WasmEngine,
    WasmRequest,
    WasmTrapError,
    _raw,
    create_handler,
)

REQUEST = WasmRequest(method="GET", path="/")
MiB = 1024 * 1024


def test_infinite_loop_hits_the_deadline(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.WAGI_INFINITE_LOOP, limits=Limits(timeout_s=0.05))
    start = time.perf_counter()
    with pytest.raises(DeadlineExceededError) as caught:
        handler.handle(REQUEST)
    elapsed = time.perf_counter() - start
    assert caught.value.timeout_s == 0.05
    # At least the deadline, at most the deadline plus a couple of ticks and slack.
    assert 0.05 <= elapsed < 0.5


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        (wat.WAGI_UNREACHABLE, "unreachable"),
        (wat.WAGI_OUT_OF_BOUNDS, "out of bounds memory access"),
        (wat.WAGI_DIVIDE_BY_ZERO, "integer divide by zero"),
    ],
)
def test_traps_carry_their_kind(make_handler: MakeHandler, source: str, kind: str) -> None:
    handler = make_handler(source)
    with pytest.raises(WasmTrapError) as caught:
        handler.handle(REQUEST)
    assert caught.value.kind == kind
    assert kind in str(caught.value)


def test_memory_hog_hits_the_memory_limit(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.WAGI_MEMORY_HOG, limits=Limits(memory_bytes=2 * MiB))
    with pytest.raises(MemoryLimitError) as caught:
        handler.handle(REQUEST)
    assert caught.value.limit_bytes == 2 * MiB


def test_initial_memory_above_the_cap_fails_at_instantiation(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.WAGI_BIG_INITIAL_MEMORY, limits=Limits(memory_bytes=16 * MiB))
    with pytest.raises(MemoryLimitError):
        handler.handle(REQUEST)
    roomy = make_handler(wat.WAGI_BIG_INITIAL_MEMORY, limits=Limits(memory_bytes=32 * MiB))
    with pytest.raises(Exception, match=r"no empty line|printed nothing"):
        roomy.handle(REQUEST)  # it runs (and prints nothing): the cap was the only problem


def test_output_over_the_limit(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.wagi_flood(8), limits=Limits(max_output_bytes=256 * 1024))
    with pytest.raises(OutputTooLargeError) as caught:
        handler.handle(REQUEST)
    assert caught.value.limit_bytes == 256 * 1024
    # wasmtime's WASI reports all it wrote; the native one stops the guest at the limit.
    assert 256 * 1024 < caught.value.size_bytes <= 8 * 65536 + 26


def test_the_host_keeps_serving_after_every_failure(make_handler: MakeHandler) -> None:
    good = make_handler(wat.wagi_print(b"content-type: text/plain\n\nfine"))
    bad = [
        make_handler(wat.WAGI_INFINITE_LOOP, limits=Limits(timeout_s=0.01)),
        make_handler(wat.WAGI_UNREACHABLE),
        make_handler(wat.WAGI_MEMORY_HOG, limits=Limits(memory_bytes=1 * MiB)),
        make_handler(wat.wagi_flood(2), limits=Limits(max_output_bytes=1024)),
    ]
    for _ in range(3):
        for handler in bad:
            with pytest.raises(Exception):  # noqa: B017 - each kind is tested above
                handler.handle(REQUEST)
            assert good.handle(REQUEST).body == b"fine"


def test_memory_limit_beyond_the_pool_slot_is_refused(make_handler: MakeHandler) -> None:
    with pytest.raises(ValueError, match="pool slot"):
        make_handler(wat.WAGI_UNREACHABLE, limits=Limits(memory_bytes=1024 * MiB))


def test_closed_engine_runs_nothing(tmp_path: object) -> None:
    with WasmEngine(EngineConfig(pool_total_instances=4)) as engine:
        compiled = ModuleCache(engine).load(wat.wagi_print(b"content-type: a/b\n\n").encode())
        handler = create_handler(engine, compiled)
        assert handler.handle(REQUEST).status == 200
    with pytest.raises(EngineClosedError):
        handler.handle(REQUEST)


@pytest.mark.parametrize("allocator", ["pooling", "on-demand"])
def test_memory_failures_under_each_allocator(allocator: str) -> None:
    config = EngineConfig(allocator=allocator, pool_total_instances=8)  # type: ignore[arg-type]
    with WasmEngine(config) as engine:
        cache = ModuleCache(engine)
        for source in (wat.WAGI_MEMORY_HOG, wat.WAGI_BIG_INITIAL_MEMORY):
            handler = create_handler(engine, cache.load(source.encode()), limits=Limits(memory_bytes=2 * MiB))
            with pytest.raises(MemoryLimitError):
                handler.handle(REQUEST)


def test_more_concurrent_requests_than_pool_slots_fail_cleanly() -> None:
    # A pool sized for one instance: a second, nested instantiation cannot get a slot. The
    # engine must say so as a handler error rather than crash, and recover afterwards.
    with WasmEngine(EngineConfig(pool_total_instances=1)) as engine:
        handler = create_handler(
            engine, ModuleCache(engine).load(wat.wagi_print(b"content-type: a/b\n\n").encode())
        )
        sandbox = handler._sandbox  # type: ignore[attr-defined]
        store, ctx = sandbox.new_store(None)
        try:
            sandbox.instantiate(ctx)
            with pytest.raises(InstanceLimitError) as caught:
                handler.handle(REQUEST)
            assert "concurrent limit" in caught.value.detail
        finally:
            _raw.store_delete(store)
        assert handler.handle(REQUEST).status == 200
