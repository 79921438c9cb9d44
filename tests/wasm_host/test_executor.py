"""The async entry point: inline for fast handlers, the pool for slow ones, errors unchanged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.wasm_host import wat
from tests.wasm_host.conftest import MakeHandler
from wasm_host import (
    DeadlineExceededError,
    ExecutorConfig,
    Limits,
    WasmExecutor,
    WasmRequest,
    WasmResponse,
)

REQUEST = WasmRequest(method="GET", path="/")
FAST = wat.wagi_print(b"content-type: text/plain\n\nfast")


async def test_fast_handler_runs_inline(make_handler: MakeHandler) -> None:
    # A budget far above the ~50 us a run takes, so a loaded test machine cannot flip it.
    executor = WasmExecutor(ExecutorConfig(inline_budget_s=0.05))
    handler = make_handler(FAST)
    try:
        for _ in range(5):
            assert (await executor.handle(handler, REQUEST)).body == b"fast"
        assert executor.placement(handler) == "inline"
        assert executor.runs_inline(handler)
        # What a server calls from its protocol callbacks: no awaiting, timed all the same.
        response = executor.try_inline(handler, REQUEST)
        assert isinstance(response, WasmResponse)
        assert response.body == b"fast"
        assert executor.cuts == 0
        assert executor.runs_inline(handler)
    finally:
        executor.close()


async def test_slow_handler_moves_to_the_pool_and_the_loop_keeps_going(
    make_handler: MakeHandler,
) -> None:
    executor = WasmExecutor(ExecutorConfig(inline_budget_s=0.005))
    slow = make_handler(wat.WAGI_INFINITE_LOOP, limits=Limits(timeout_s=0.03), name="slow")
    try:
        with pytest.raises(DeadlineExceededError):
            await executor.handle(slow, REQUEST)  # first run is inline and is measured
        assert executor.placement(slow) == "thread"

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.002)
                ticks += 1

        task = asyncio.create_task(ticker())
        start = time.perf_counter()
        results = await asyncio.gather(
            *(executor.handle(slow, REQUEST) for _ in range(4)), return_exceptions=True
        )
        elapsed = time.perf_counter() - start
        task.cancel()
        assert all(isinstance(result, DeadlineExceededError) for result in results)
        # The loop kept ticking while four 30 ms guests ran on the pool.
        assert ticks >= int(elapsed / 0.002) // 3
    finally:
        executor.close()


async def test_pinned_thread_mode(make_handler: MakeHandler) -> None:
    executor = WasmExecutor(ExecutorConfig(mode="thread", max_workers=2))
    handler = make_handler(FAST)
    try:
        bodies = await asyncio.gather(*(executor.handle(handler, REQUEST) for _ in range(20)))
        assert {response.body for response in bodies} == {b"fast"}
        assert executor.placement(handler) == "thread"
    finally:
        executor.close()


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="mode"):
        ExecutorConfig(mode="fork")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_workers"):
        ExecutorConfig(max_workers=0)


async def test_queueing_on_the_pool_does_not_keep_a_fast_handler_there(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.wagi_print(b"content-type: text/plain\n\nok"))
    executor = WasmExecutor(ExecutorConfig(mode="auto", max_workers=1, inline_budget_s=0.001))
    try:
        # As if it had once been slow: the next requests go to the (single-worker) pool.
        executor._average[handler.digest + handler.name] = 0.01
        assert executor.placement(handler) == "thread"
        # 200 at once queue behind each other for far longer than the 1 ms budget ...
        await asyncio.gather(*(executor.handle(handler, REQUEST) for _ in range(200)))
        # ... but each ran in microseconds, which is what decides where it runs next.
        assert executor.placement(handler) == "inline"
    finally:
        executor.close()


class PythonHandler:
    """A stand-in handler: ``work`` is what one run does (the executor only times it)."""

    abi = "wagi"
    limits = Limits()
    calls_out = False

    def __init__(self, name: str, work: Callable[[], None]) -> None:
        self.name = name
        self.digest = name * 8
        self._work = work

    def handle(self, request: WasmRequest, timeout_s: float | None = None) -> WasmResponse:
        self._work()
        return WasmResponse(status=200, headers=(), body=b"ok")


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def test_runs_are_timed_in_cpu_time_so_a_descheduled_run_stays_inline() -> None:
    """A run that takes 20 ms of wall time but no CPU (the host descheduled the process, or
    it waited for the GIL) says nothing about the handler; 20 ms of computing does."""
    executor = WasmExecutor(ExecutorConfig(inline_budget_s=0.001))
    stalled = PythonHandler("stalled", lambda: time.sleep(0.02))
    computing = PythonHandler("computing", lambda: _spin(0.02))
    try:
        for _ in range(3):
            await executor.handle(stalled, REQUEST)
            await executor.handle(computing, REQUEST)
        assert executor.placement(stalled) == "inline"
        assert executor.placement(computing) == "thread"
    finally:
        executor.close()
