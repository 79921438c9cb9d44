"""Running a process's ``run()`` until SIGINT or SIGTERM, with a clean, bounded shutdown.

Signal handlers only set a stop event; ``run()`` watches the event, closes its listeners
first, and returns. A second signal while stopping cancels the run outright.

A supervisor that sets ``EDGECDN_PARENT_PID`` in a child's environment asks the child to
die with it: the child arms Linux's parent-death signal itself at start-up (rather than
the supervisor running Python between fork and exec, which is unsafe once gRPC's fork
handlers are installed), then checks that its parent did not die before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

import uvloop

logger = logging.getLogger(__name__)

StopEvent = asyncio.Event
PARENT_PID_ENV = "EDGECDN_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGTERM this process when the parent named by ``EDGECDN_PARENT_PID`` dies (Linux)."""
    expected = os.environ.get(PARENT_PID_ENV)
    if not expected or sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        logger.warning("cannot arm the parent-death signal (errno %d)", ctypes.get_errno())
    if str(os.getppid()) != expected:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)


def serve_until_signalled(main: Callable[[StopEvent], Awaitable[None]], *, fast_loop: bool = False) -> None:
    """Run ``main(stop)`` in a fresh event loop; SIGINT/SIGTERM set ``stop``.

    ``fast_loop`` runs it on uvloop (libuv; uvicorn's default loop) instead of asyncio's
    own: for the data-plane processes, whose every request crosses the loop. Measured at
    one request in flight, the router's added latency drops ~20 µs and its CPU per request
    ~10%; a busy edge node serves 5-18% more reactor requests (bench/README.md).
    """
    die_with_parent()

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and task is not None:
                task.cancel()  # second signal: stop waiting for a graceful shutdown
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            await main(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    loop_factory = uvloop.new_event_loop if fast_loop else None
    with (
        contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError),
        asyncio.Runner(loop_factory=loop_factory) as loop_runner,
    ):
        loop_runner.run(runner())


async def wait_for_stop(stop: StopEvent | None) -> None:
    """Wait until ``stop`` is set; with no event, wait until cancelled."""
    if stop is None:
        await asyncio.Future()
    else:
        await stop.wait()
