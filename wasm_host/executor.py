"""Async entry point for servers: run a handler inline on the event loop or on a thread.

Measured (docs/abi.md, bench/wasm_overhead.py): handing a ~50 us request to a thread pool
costs more than the request itself (a ``run_in_executor`` round trip plus GIL hand-offs),
so fast handlers run inline: a whole request stays on one thread with no scheduling. A
handler that turns out slow (its moving average above ``inline_budget_s``) would stall
every other request on the loop, so from then on it runs on the pool, where the GIL is
released while wasm runs and other requests proceed. ``mode`` pins either behaviour.

No guest holds the event loop for longer than a short slice (``inline_slice_s``, rounded
to the engine's epoch ticks: at most 10 ms with the default 5 ms tick), whatever its
history says: an inline run gets that slice as its deadline instead of its module's.
When the slice runs out the run is abandoned and the request starts again on the pool
with what is left of the module's deadline. Running it again is correct because a run
has no effect outside its own instance: every request, both ABIs, gets a fresh store and
instance; WAGI stdin is the request's bytes, stdout a per-run buffer; a guest has no
files, sockets or shared memory. A cut that computed (CPU time over the budget) sends the
handler's next requests straight to the pool (issue 24: a new handler's first request, or
a handler slow for some inputs drifting back inline, froze a node for its whole 5 s
timeout); a cut that barely computed (the host descheduled the loop's thread) is an
ordinary sample, so a fast handler is not exiled by a hiccup.

On the pool, one handler may hold at most ``max_workers - 1`` workers at once (its other
requests wait their turn in its own queue), so a runaway hit faster than its deadline
lets requests finish cannot queue every other handler behind its runs (a fast handler's
request cut while the host descheduled the loop would otherwise wait out the backlog).
Fewer spinning guests also leave the loop more CPU: measured (bench/runaway.py, 2 cores),
a runaway on three workers at nice +10 kept the fast route's p99 within 1.1x of idle, on
four 2.5x, on three at nice 0 6.3x.

A run is timed in CPU time of the thread that ran it, not wall time: wall time also
counts a host descheduling the process for a few milliseconds (routine on a busy VM) and,
on the pool, waiting for the GIL while the event loop holds it. Measured in wall time,
one such hiccup sent a 30 µs handler to the pool, and under load its pool runs then
measured over the budget, GIL waits included, so it stayed there at several times the
cost per request. A guest that really computes for long burns CPU and still moves. The
slice, by contrast, is wall time (epoch ticks): it bounds what the loop's other requests
wait.

A handler that calls out (``Handler.calls_out``: its module imports ``edge_http``) is the
exception to all of the above: its runs reach other servers, so running one twice is not
correct, and it blocks its thread while its fetches run on the event loop. It never runs
inline and is never cut and run again: every request runs once, on a pool of its own
(``max_outbound_workers`` threads: they mostly wait, so they cost no CPU and never take a
slot from the handlers that compute), with the module's whole deadline and the request's
context variables (the server's ``wasm_host.outbound.CURRENT_FETCHER``).

The decisions are pure functions below (``moving_average``, ``placement_for``,
``inline_timeout``, ``average_after_cut``, ``average_after_deadline``, ``remaining_timeout``,
``per_handler_cap``),
tested directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Literal

from wasm_host.errors import DeadlineExceededError
from wasm_host.handler import Handler
from wasm_host.values import WasmRequest, WasmResponse

logger = logging.getLogger(__name__)

ExecutionMode = Literal["auto", "inline", "thread"]
Placement = Literal["inline", "thread"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorConfig:
    """How ``WasmExecutor`` places work: ``auto`` measures, the others are fixed (``inline``
    still ends every loop run at the slice)."""

    mode: ExecutionMode = "auto"
    max_workers: int = 4
    # A handler whose average run exceeds this leaves the event loop for the pool.
    inline_budget_s: float = 0.001
    # Weight of the newest sample in the moving average.
    smoothing: float = 0.2
    # Deadline of a run on the event loop: the engine gives it at least this and at most
    # one epoch tick more, rounded up to whole ticks (2 ticks = 5-10 ms at the default 5 ms
    # tick). Far above a fast handler's ~20-50 µs, so a fast handler is never cut.
    inline_slice_s: float = 0.002
    # Niceness added to the pool's threads (Linux: per thread). A runaway guest spins on
    # its worker until its deadline; on a 2-core machine four of them would take CPU from
    # the thread that serves every other request. 0 leaves them at the process's priority.
    worker_nice: int = 10
    # Workers one handler may hold at once; 0: all but one (``per_handler_cap``).
    max_workers_per_handler: int = 0
    # Threads for handlers that call out (they wait on the network, not the CPU); one such
    # handler may hold all but one of them.
    max_outbound_workers: int = 16

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "inline", "thread"):
            raise ValueError(f"unknown execution mode {self.mode!r}")
        if self.max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        if self.inline_budget_s <= 0:
            raise ValueError("inline_budget_s must be positive")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be within (0, 1]")
        if not 0 < self.inline_slice_s <= 0.1:
            raise ValueError(f"inline_slice_s must be within (0, 0.1] seconds, got {self.inline_slice_s}")
        if not 0 <= self.max_workers_per_handler <= self.max_workers:
            raise ValueError(
                f"max_workers_per_handler must be within [0, max_workers={self.max_workers}], "
                f"got {self.max_workers_per_handler}"
            )
        if self.max_outbound_workers < 1:
            raise ValueError(f"max_outbound_workers must be at least 1, got {self.max_outbound_workers}")
        if not 0 <= self.worker_nice <= 19:
            raise ValueError(f"worker_nice must be within [0, 19], got {self.worker_nice}")


@dataclass(frozen=True, slots=True)
class InlineCut:
    """An inline run stopped at the slice: finish the request with
    ``WasmExecutor.handle(handler, request, spent_s=spent_s)``."""

    spent_s: float  # wall time the abandoned run took, charged to the request's deadline


def moving_average(previous: float, sample: float, smoothing: float) -> float:
    """The exponential moving average after ``sample``."""
    return previous + smoothing * (sample - previous)


def placement_for(mode: ExecutionMode, average: float, budget: float) -> Placement:
    """Where a handler with this average run time starts its next request."""
    if mode != "auto":
        return mode
    return "thread" if average > budget else "inline"


def inline_timeout(timeout_s: float, slice_s: float) -> float | None:
    """The deadline of an inline run: the slice, or None when the module's own deadline is
    no longer (the run on the loop is then the whole run, and its deadline is final)."""
    return slice_s if slice_s < timeout_s else None


def average_after_cut(previous: float, cpu_s: float, budget: float, smoothing: float) -> float:
    """The average after a run cut at the slice that had computed for ``cpu_s``.

    Over the budget, the handler is slow (the run was unfinished even so): the average
    jumps to at least that, and past the budget, so the next request goes to the pool.
    Within it the thread was mostly descheduled, which says nothing about the handler:
    an ordinary sample.
    """
    if cpu_s > budget:
        return max(previous, cpu_s, 2 * budget)
    return moving_average(previous, cpu_s, smoothing)


def remaining_timeout(timeout_s: float, spent_s: float) -> float | None:
    """What is left of the deadline after an abandoned inline run; None when nothing is."""
    left = timeout_s - spent_s
    return left if left > 0 else None


def average_after_deadline(previous: float, cpu_s: float, budget: float) -> float:
    """The average after a run that hit the module's own deadline, wherever it ran.

    It never finished: slow by definition, whatever CPU it got. On a loaded machine a
    looping guest may have had only a few milliseconds of CPU in its whole deadline (the
    pool's threads are niced), which as an ordinary sample would keep it inline.
    """
    return max(previous, cpu_s, 2 * budget)


def per_handler_cap(max_workers: int, configured: int) -> int:
    """Workers one handler may hold: ``configured``, or by default all but one (at least 1)."""
    return configured or max(1, max_workers - 1)


def _lower_priority(nice: int) -> None:
    """Pool thread initializer: raise this thread's niceness (Linux sets it per thread)."""
    if nice and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError as exc:  # a sandbox may forbid it; the pool works all the same
            logger.debug("cannot lower the wasm worker's priority: %s", exc)


class WasmExecutor:
    """Runs handlers for an asyncio server: ``await executor.handle(handler, request)``, or,
    when ``runs_inline(handler)``, ``try_inline`` without awaiting (and ``handle`` with the
    cut's ``spent_s`` when the slice ran out)."""

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        self.config = config or ExecutorConfig()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.config.max_workers,
            thread_name_prefix="wasm",
            initializer=_lower_priority,
            initargs=(self.config.worker_nice,),
        )
        self._average: dict[str, float] = {}
        self._cap = per_handler_cap(self.config.max_workers, self.config.max_workers_per_handler)
        # Per handler: a semaphore of ``_cap`` pool slots, made on its first pool run and kept
        # (``forget`` too keeps it: it counts runs still in flight).
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._outbound_pool: concurrent.futures.ThreadPoolExecutor | None = None  # made on first use
        self.cuts = 0  # inline runs stopped at the slice and finished on the pool

    def placement(self, handler: Handler) -> Placement:
        """Where the next request for ``handler`` will start."""
        if handler.calls_out:
            return "thread"
        config = self.config
        average = self._average.get(handler.digest + handler.name, 0.0)
        return placement_for(config.mode, average, config.inline_budget_s)

    def runs_inline(self, handler: Handler) -> bool:
        """True when the next request for ``handler`` starts on the calling thread: then a
        server may call ``try_inline`` straight from its protocol callbacks, with no task."""
        return self.placement(handler) == "inline"

    def try_inline(self, handler: Handler, request: WasmRequest) -> WasmResponse | InlineCut:
        """Run ``handler`` on this thread for at most the slice; an ``InlineCut`` when it ran
        out (nothing of the run remains; finish with ``handle(..., spent_s=cut.spent_s)``).
        Never for a handler that ``calls_out``: ValueError."""
        if handler.calls_out:
            raise ValueError(f"handler {handler.name} calls out: it runs once, on the pool, never inline")
        deadline = inline_timeout(handler.limits.timeout_s, self.config.inline_slice_s)
        wall = time.perf_counter()
        start = time.thread_time()
        try:
            response = handler.handle(request, deadline)
        except DeadlineExceededError:
            if deadline is None:
                self._record(handler, time.thread_time() - start, timed_out=True)
                raise
            return self._cut(handler, time.perf_counter() - wall, time.thread_time() - start)
        except BaseException:
            self._record(handler, time.thread_time() - start)
            raise
        self._record(handler, time.thread_time() - start)
        return response

    async def handle(self, handler: Handler, request: WasmRequest, *, spent_s: float = 0.0) -> WasmResponse:
        """Run ``handler`` for ``request``; raises the handler's ``HandlerError`` subclasses.

        ``spent_s`` is the wall time an abandoned inline run of this request took
        (``InlineCut.spent_s``): the request then runs on the pool with the rest of its
        deadline.
        """
        if handler.calls_out:
            return await self._handle_outbound(handler, request)
        if not spent_s and self.runs_inline(handler):
            outcome = self.try_inline(handler, request)
            if isinstance(outcome, WasmResponse):
                return outcome
            spent_s = outcome.spent_s
        timeout: float | None = None
        if spent_s:
            timeout = remaining_timeout(handler.limits.timeout_s, spent_s)
            if timeout is None:
                raise DeadlineExceededError(handler.limits.timeout_s)
        loop = asyncio.get_running_loop()
        ran_for: list[float] = []
        key = handler.digest + handler.name
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self._cap)

        timed_out = False

        def run_timed() -> WasmResponse:
            nonlocal timed_out
            start = time.thread_time()
            try:
                return handler.handle(request, timeout)
            except DeadlineExceededError:
                timed_out = True
                raise
            finally:
                ran_for.append(time.thread_time() - start)

        try:
            async with slots:
                return await loop.run_in_executor(self._pool, run_timed)
        finally:
            # Only the run itself counts, measured on the worker: time queued behind other
            # requests says nothing about this handler, and counting it would keep a fast
            # handler on the pool for as long as the node is busy.
            if ran_for:
                self._record(handler, ran_for[0], timed_out=timed_out)

    async def _handle_outbound(self, handler: Handler, request: WasmRequest) -> WasmResponse:
        """One run of a handler that calls out, on the outbound pool, in this task's context."""
        pool = self._outbound_pool
        if pool is None:
            pool = self._outbound_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.config.max_outbound_workers,
                thread_name_prefix="wasm-outbound",
                initializer=_lower_priority,
                initargs=(self.config.worker_nice,),
            )
        key = "outbound:" + handler.digest + handler.name
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(per_handler_cap(self.config.max_outbound_workers, 0))
        context = contextvars.copy_context()
        async with slots:
            return await asyncio.get_running_loop().run_in_executor(
                pool, context.run, handler.handle, request
            )

    def _cut(self, handler: Handler, spent_s: float, cpu_s: float) -> InlineCut:
        key = handler.digest + handler.name
        config = self.config
        previous = self._average.get(key, 0.0)
        average = self._average[key] = average_after_cut(
            previous, cpu_s, config.inline_budget_s, config.smoothing
        )
        self.cuts += 1
        logger.info(
            "wasm handler %s (%s) held the event loop %.1f ms (%.1f ms of CPU): stopped, its "
            "request runs again on the thread pool; its next ones start %s",
            handler.name,
            handler.digest[:12],
            spent_s * 1000,
            cpu_s * 1000,
            "inline" if placement_for(config.mode, average, config.inline_budget_s) == "inline" else "there",
        )
        return InlineCut(spent_s)

    def _record(self, handler: Handler, elapsed: float, *, timed_out: bool = False) -> None:
        key = handler.digest + handler.name
        # Starting from 0 means one preempted run of a fast handler (a GC pause, a busy
        # neighbour) does not send it to the pool; a slow one crosses the budget within a
        # few requests (one over the slice is cut and moved on its first).
        previous = self._average.get(key, 0.0)
        budget = self.config.inline_budget_s
        if timed_out:
            average = self._average[key] = average_after_deadline(previous, elapsed, budget)
        else:
            average = self._average[key] = moving_average(previous, elapsed, self.config.smoothing)
        if (previous > budget) != (average > budget):
            logger.info(
                "wasm handler %s (%s) now runs %s: average run %.0f µs of CPU, budget %.0f µs",
                handler.name,
                handler.digest[:12],
                "on the thread pool" if average > budget else "inline on the event loop",
                average * 1e6,
                budget * 1e6,
            )

    def forget(self, handler: Handler) -> None:
        """Drop the timing history of ``handler`` (after it is replaced by a new version)."""
        self._average.pop(handler.digest + handler.name, None)

    def close(self) -> None:
        """Wait for running work, drop queued work, and stop the pool's threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._outbound_pool is not None:
            self._outbound_pool.shutdown(wait=True, cancel_futures=True)
