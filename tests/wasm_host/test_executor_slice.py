"""Issue 24: no guest holds the event loop longer than the executor's slice.

The placement and deadline decisions are pure functions, tested directly (Hypothesis for
their invariants); then real modules show a cut inline run finished correctly on the pool.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.wasm_host import wat
from tests.wasm_host.conftest import MakeHandler
from wasm_host import DeadlineExceededError, ExecutorConfig, Limits, WasmExecutor, WasmRequest, WasmResponse
from wasm_host.executor import (
    InlineCut,
    _lower_priority,
    average_after_cut,
    average_after_deadline,
    inline_timeout,
    moving_average,
    per_handler_cap,
    placement_for,
    remaining_timeout,
)

REQUEST = WasmRequest(method="GET", path="/")
seconds = st.floats(min_value=0, max_value=3600, allow_nan=False)
positive = st.floats(min_value=1e-6, max_value=10, allow_nan=False)

# What the loop may be held, with the tests' 2 ms epoch tick: 2 ticks (4 ms) and whatever a
# loaded machine adds (a descheduled thread). Far below every runaway's deadline here
# (>= 1 s), which is what the loop was held before the slice.
LOOP_HOLD_BOUND_S = 0.25


# --- the pure decisions -------------------------------------------------------------


@given(average=seconds, budget=positive)
def test_auto_placement_is_inline_exactly_within_the_budget(average: float, budget: float) -> None:
    assert (placement_for("auto", average, budget) == "inline") == (average <= budget)
    assert placement_for("inline", average, budget) == "inline"
    assert placement_for("thread", average, budget) == "thread"


@given(previous=seconds, cpu=seconds, budget=positive)
def test_a_cut_that_computed_sends_the_next_request_to_the_pool(
    previous: float, cpu: float, budget: float
) -> None:
    assume(cpu > budget)
    after = average_after_cut(previous, cpu, budget, 0.2)
    assert placement_for("auto", after, budget) == "thread"
    assert after >= previous
    assert after >= cpu


@given(previous=st.floats(min_value=0, max_value=0.001), cpu=st.floats(min_value=0, max_value=0.001))
def test_a_cut_while_descheduled_keeps_a_fast_handler_inline(previous: float, cpu: float) -> None:
    """The slice is wall time: a fast run on a descheduled thread can be cut with almost no
    CPU spent. That says nothing about the handler; it must not move to the pool."""
    after = average_after_cut(previous, cpu, 0.001, 0.2)
    assert placement_for("auto", after, 0.001) == "inline"


@given(previous=seconds, cpu=seconds, budget=positive)
def test_a_run_that_hit_its_deadline_sends_the_next_request_to_the_pool(
    previous: float, cpu: float, budget: float
) -> None:
    """However little CPU a loaded machine gave it: a guest that never finished is slow."""
    after = average_after_deadline(previous, cpu, budget)
    assert placement_for("auto", after, budget) == "thread"
    assert after >= max(previous, cpu)


@given(workers=st.integers(min_value=1, max_value=64), configured=st.integers(min_value=0, max_value=64))
def test_one_handler_leaves_a_worker_for_the_others(workers: int, configured: int) -> None:
    assume(configured <= workers)
    cap = per_handler_cap(workers, configured)
    assert 1 <= cap <= workers
    if configured == 0 and workers > 1:
        assert cap == workers - 1


@given(previous=seconds, sample=seconds, smoothing=st.floats(min_value=0.01, max_value=1))
def test_the_moving_average_lies_between_history_and_sample(
    previous: float, sample: float, smoothing: float
) -> None:
    average = moving_average(previous, sample, smoothing)
    assert min(previous, sample) - 1e-9 <= average <= max(previous, sample) + 1e-9


@given(samples=st.lists(st.floats(min_value=0, max_value=0.001), max_size=200))
def test_runs_within_the_budget_never_leave_the_loop(samples: list[float]) -> None:
    average = 0.0
    for sample in samples:
        average = moving_average(average, sample, 0.2)
        assert placement_for("auto", average, 0.001) == "inline"


@given(timeout=positive, slice_s=positive)
def test_an_inline_run_never_gets_more_than_the_slice(timeout: float, slice_s: float) -> None:
    deadline = inline_timeout(timeout, slice_s)
    if deadline is None:
        assert timeout <= slice_s  # the whole run fits the slice: its own deadline is final
    else:
        assert deadline == slice_s < timeout


@given(timeout=positive, spent=seconds)
def test_the_run_on_the_pool_gets_the_rest_of_the_deadline(timeout: float, spent: float) -> None:
    left = remaining_timeout(timeout, spent)
    if spent >= timeout:
        assert left is None
    else:
        assert left is not None
        assert 0 < left <= timeout
        assert left + spent == pytest.approx(timeout)


def test_config_checks_the_slice_and_niceness() -> None:
    with pytest.raises(ValueError, match="inline_slice_s"):
        ExecutorConfig(inline_slice_s=0)
    with pytest.raises(ValueError, match="inline_slice_s"):
        ExecutorConfig(inline_slice_s=5)
    with pytest.raises(ValueError, match="worker_nice"):
        ExecutorConfig(worker_nice=-1)
    with pytest.raises(ValueError, match="max_workers_per_handler"):
        ExecutorConfig(max_workers=2, max_workers_per_handler=3)


# --- real modules ---------------------------------------------------------------------


def _spin(iterations: int) -> str:
    """WAT that counts ``iterations`` down (tens of ms for 10^8 on these machines)."""
    return (
        f"(local.set $i (i32.const {iterations}))"
        " (loop $spin (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br_if $spin (local.get $i)))"
    )


SPIN = 100_000_000
# A command that computes for a while, then answers: slow, but within its deadline.
WAGI_SLOW = wat.wagi_print(b"content-type: text/plain\n\nslow but fine").replace(
    '(func (export "_start")', f'(func (export "_start") (local $i i32) {_spin(SPIN)}'
)
# REACTOR_ECHO computing first; its x-calls header counts the requests its instance served.
REACTOR_SLOW_ECHO = wat.REACTOR_ECHO.replace(
    "(result i64) (local $out i32)", f"(result i64) (local $out i32) (local $i i32) {_spin(SPIN)}"
)


def test_a_new_runaway_is_cut_at_the_slice(make_handler: MakeHandler) -> None:
    executor = WasmExecutor()
    runaway = make_handler(wat.WAGI_INFINITE_LOOP, limits=Limits(timeout_s=5), name="runaway")
    try:
        assert executor.runs_inline(runaway)  # no history: the first request starts inline
        start = time.perf_counter()
        outcome = executor.try_inline(runaway, REQUEST)
        held = time.perf_counter() - start
        assert isinstance(outcome, InlineCut)
        assert held < LOOP_HOLD_BOUND_S
        assert 0 < outcome.spent_s <= held
        assert executor.placement(runaway) == "thread"
        assert executor.cuts == 1
    finally:
        executor.close()


@pytest.mark.parametrize(("source", "abi"), [(WAGI_SLOW, "wagi"), (REACTOR_SLOW_ECHO, "reactor")])
async def test_a_cut_request_is_run_again_from_scratch_and_answers_right(
    make_handler: MakeHandler, source: str, abi: str
) -> None:
    executor = WasmExecutor()
    slow = make_handler(source, abi=abi, limits=Limits(timeout_s=5), name="slow")
    try:
        outcome = executor.try_inline(slow, REQUEST)
        assert isinstance(outcome, InlineCut)
        response = await executor.handle(slow, REQUEST, spent_s=outcome.spent_s)
        if abi == "wagi":
            assert response.body == b"slow but fine"
        else:
            # A fresh instance: the abandoned run left nothing behind in the one that answered.
            assert ("x-calls", "1") in response.headers
    finally:
        executor.close()


async def test_handle_finishes_a_cut_request_on_the_pool_and_the_loop_keeps_going(
    make_handler: MakeHandler,
) -> None:
    """What today froze a node: a new handler's first request ran inline for its deadline."""
    # Pool threads at nice 0: a niced thread on a machine busy with other tests (the suite
    # runs a worker per core) may wait hundreds of ms for the CPU to reach its trap, which
    # says nothing about the hand-over measured here (niceness: the test after this one).
    executor = WasmExecutor(ExecutorConfig(worker_nice=0))
    runaway = make_handler(wat.WAGI_INFINITE_LOOP, limits=Limits(timeout_s=1.0), name="runaway")
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    try:
        beating = asyncio.create_task(heartbeat())
        await asyncio.sleep(0.01)
        start = time.perf_counter()
        with pytest.raises(DeadlineExceededError) as failure:
            await executor.handle(runaway, REQUEST)
        elapsed = time.perf_counter() - start
        beating.cancel()
        assert failure.value.timeout_s == 1.0  # the module's own deadline, as before
        # The rest of the deadline, not a fresh one: the request took its deadline, give or
        # take a tick and the hand-over.
        assert 0.95 <= elapsed < 1.0 + LOOP_HOLD_BOUND_S
        assert max(gaps) < LOOP_HOLD_BOUND_S, f"event loop held {max(gaps) * 1000:.0f} ms"
    finally:
        executor.close()


def test_pool_threads_run_niced_and_the_loop_thread_does_not() -> None:
    """A runaway on the pool yields the CPU to the event loop's thread (nice is per thread)."""
    seen: list[int] = []

    def pool_thread_start() -> None:
        _lower_priority(7)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=pool_thread_start)
    thread.start()
    thread.join()
    assert seen[0] >= 7  # nice 7 (or a process already niced further)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before


async def test_a_cut_past_the_deadline_fails_without_running_again(make_handler: MakeHandler) -> None:
    executor = WasmExecutor()
    handler = make_handler(wat.WAGI_INFINITE_LOOP, limits=Limits(timeout_s=0.05))
    try:
        start = time.perf_counter()
        with pytest.raises(DeadlineExceededError):
            await executor.handle(handler, REQUEST, spent_s=0.06)
        assert time.perf_counter() - start < 0.04
    finally:
        executor.close()


async def test_a_handler_shorter_than_the_slice_keeps_its_own_deadline(make_handler: MakeHandler) -> None:
    """A 1 ms deadline is within the slice: the inline run is the whole run and its timeout
    is final (nothing is run again)."""
    executor = WasmExecutor(ExecutorConfig(inline_slice_s=0.002))
    handler = make_handler(wat.WAGI_INFINITE_LOOP, limits=Limits(timeout_s=0.001))
    try:
        with pytest.raises(DeadlineExceededError):
            executor.try_inline(handler, REQUEST)
        assert executor.cuts == 0
    finally:
        executor.close()


class InputDependent:
    """A handler slow only for some inputs (``/slow``), honouring the deadline it is given
    the way the sandbox does: it raises ``DeadlineExceededError`` when it runs out."""

    abi = "wagi"
    limits = Limits(timeout_s=2)
    calls_out = False
    name = "moody"
    digest = "moody" * 8

    def handle(self, request: WasmRequest, timeout_s: float | None = None) -> WasmResponse:
        deadline = self.limits.timeout_s if timeout_s is None else timeout_s
        work = 0.2 if request.path == "/slow" else 0.0
        end = time.perf_counter() + min(work, deadline)
        while time.perf_counter() < end:
            pass
        if work > deadline:
            raise DeadlineExceededError(self.limits.timeout_s)
        return WasmResponse(status=200, headers=(), body=request.path.encode())


async def test_a_handler_slow_for_some_inputs_never_holds_the_loop_past_the_slice() -> None:
    """It drifts back inline after fast requests (by design), but its next slow input is
    cut at the slice rather than running 200 ms on the loop."""
    executor = WasmExecutor()
    handler = InputDependent()
    slow = WasmRequest(method="GET", path="/slow")
    try:
        for _ in range(3):
            assert (await executor.handle(handler, slow)).body == b"/slow"
            assert executor.placement(handler) == "thread"
            for _ in range(200):
                if executor.runs_inline(handler):
                    break
                await executor.handle(handler, REQUEST)
            assert executor.runs_inline(handler)
            start = time.perf_counter()
            outcome = executor.try_inline(handler, slow)
            assert isinstance(outcome, InlineCut)
            assert time.perf_counter() - start < 0.2  # the slice (2 ms here), not the work
            assert (await executor.handle(handler, slow, spent_s=outcome.spent_s)).body == b"/slow"
    finally:
        executor.close()


async def test_a_runaway_backlog_on_the_pool_does_not_hold_up_other_handlers(
    make_handler: MakeHandler,
) -> None:
    """A runaway hit faster than its deadline ends its runs: its requests queue behind its
    own, not in front of another handler's."""
    executor = WasmExecutor(ExecutorConfig(mode="thread", max_workers=2))
    runaway = make_handler(wat.WAGI_INFINITE_LOOP, limits=Limits(timeout_s=2), name="runaway")
    fast = make_handler(wat.wagi_print(b"content-type: text/plain\n\nfast"), name="fast")
    try:
        backlog = [asyncio.ensure_future(executor.handle(runaway, REQUEST)) for _ in range(6)]
        await asyncio.sleep(0.05)  # the runaway holds its worker and queues the rest
        start = time.perf_counter()
        assert (await executor.handle(fast, REQUEST)).body == b"fast"
        assert time.perf_counter() - start < 1.0  # a free worker, not after a 2 s runaway run
        for task in backlog:
            task.cancel()
        await asyncio.gather(*backlog, return_exceptions=True)
    finally:
        executor.close()
