"""Running a process's ``run()`` until SIGINT or SIGTERM, with a clean, bounded shutdown.

Signal handlers only set a stop event; ``run()`` watches the event, closes its listeners
first, and returns. A second signal while stopping cancels the run outright.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

StopEvent = asyncio.Event


def serve_until_signalled(main: Callable[[StopEvent], Awaitable[None]]) -> None:
    """Run ``main(stop)`` in a fresh event loop; SIGINT/SIGTERM set ``stop``."""

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

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(runner())


async def wait_for_stop(stop: StopEvent | None) -> None:
    """Wait until ``stop`` is set; with no event, wait until cancelled."""
    if stop is None:
        await asyncio.Future()
    else:
        await stop.wait()
