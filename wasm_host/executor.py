"""Async entry point for servers: run a handler inline on the event loop or on a thread.

Measured (docs/abi.md, bench/wasm_overhead.py): handing a ~50 us request to a thread pool
costs more than the request itself (a ``run_in_executor`` round trip plus GIL hand-offs),
so fast handlers run inline: a whole request stays on one thread with no scheduling. A
handler that turns out slow (its moving average above ``inline_budget_s``) would stall
every other request on the loop, so from then on it runs on the pool, where the GIL is
released while wasm runs and other requests proceed. ``mode`` pins either behaviour.

A run is timed in CPU time of the thread that ran it, not wall time: wall time also
counts a host descheduling the process for a few milliseconds (routine on a busy VM) and,
on the pool, waiting for the GIL while the event loop holds it. Measured in wall time,
one such hiccup sent a 30 µs handler to the pool, and under load its pool runs then
measured over the budget, GIL waits included, so it stayed there at several times the
cost per request. A guest that really computes for long burns CPU and still moves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from dataclasses import dataclass
from typing import Literal

from wasm_host.handler import Handler
from wasm_host.values import WasmRequest, WasmResponse

logger = logging.getLogger(__name__)

ExecutionMode = Literal["auto", "inline", "thread"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorConfig:
    """How ``WasmExecutor`` places work: ``auto`` measures, the others are fixed."""

    mode: ExecutionMode = "auto"
    max_workers: int = 4
    # A handler whose average run exceeds this leaves the event loop for the pool.
    inline_budget_s: float = 0.001
    # Weight of the newest sample in the moving average.
    smoothing: float = 0.2

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "inline", "thread"):
            raise ValueError(f"unknown execution mode {self.mode!r}")
        if self.max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        if self.inline_budget_s <= 0:
            raise ValueError("inline_budget_s must be positive")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be within (0, 1]")


class WasmExecutor:
    """Runs handlers for an asyncio server: ``await executor.handle(handler, request)``, or,
    when ``runs_inline(handler)``, ``handle_inline`` without awaiting."""

    def __init__(self, config: ExecutorConfig | None = None) -> None:
        self.config = config or ExecutorConfig()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.config.max_workers, thread_name_prefix="wasm"
        )
        self._average: dict[str, float] = {}

    def placement(self, handler: Handler) -> Literal["inline", "thread"]:
        """Where the next request for ``handler`` will run."""
        mode = self.config.mode
        if mode != "auto":
            return mode
        average = self._average.get(handler.digest + handler.name, 0.0)
        return "thread" if average > self.config.inline_budget_s else "inline"

    def runs_inline(self, handler: Handler) -> bool:
        """True when the next request for ``handler`` runs on the calling thread: then a server
        may call ``handle_inline`` straight from its protocol callbacks, with no task."""
        return self.placement(handler) == "inline"

    def handle_inline(self, handler: Handler, request: WasmRequest) -> WasmResponse:
        """Run ``handler`` on this thread, timed like every run (see ``runs_inline``)."""
        start = time.thread_time()
        try:
            return handler.handle(request)
        finally:
            self._record(handler, time.thread_time() - start)

    async def handle(self, handler: Handler, request: WasmRequest) -> WasmResponse:
        """Run ``handler`` for ``request``; raises the handler's ``HandlerError`` subclasses."""
        if self.runs_inline(handler):
            return self.handle_inline(handler, request)
        loop = asyncio.get_running_loop()
        ran_for: list[float] = []

        def run_timed() -> WasmResponse:
            start = time.thread_time()
            try:
                return handler.handle(request)
            finally:
                ran_for.append(time.thread_time() - start)

        try:
            return await loop.run_in_executor(self._pool, run_timed)
        finally:
            # Only the run itself counts, measured on the worker: time queued behind other
            # requests says nothing about this handler, and counting it would keep a fast
            # handler on the pool for as long as the node is busy.
            if ran_for:
                self._record(handler, ran_for[0])

    def _record(self, handler: Handler, elapsed: float) -> None:
        key = handler.digest + handler.name
        # Starting from 0 means one preempted run of a fast handler (a GC pause, a busy
        # neighbour) does not send it to the pool; a slow one crosses the budget within a
        # few requests (a 100 ms guest on its first).
        previous = self._average.get(key, 0.0)
        average = self._average[key] = previous + self.config.smoothing * (elapsed - previous)
        budget = self.config.inline_budget_s
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
        """Wait for running work and stop the pool's threads."""
        self._pool.shutdown(wait=True)
