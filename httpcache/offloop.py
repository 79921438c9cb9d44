"""The disk tier off the event loop: every read, write and purge of ``httpcache.disk`` runs
on one worker thread, so a slow disk (an fsync takes milliseconds, a cold read more) never
stalls the requests the loop is serving.

One thread, not a pool: the disk tier's index is not shared between threads, and a single
queue keeps writes in the order they were made (a put, then the purge that follows it).
The loop reads only ``holds`` (a dict membership test, atomic under the GIL) to decide
whether a memory miss is worth a disk read. Writes are fire-and-forget: the memory tier
already holds the entry, and a write the disk refuses loses nothing but its copy there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from httpcache.disk import DiskTier
from httpcache.model import PurgeSelector, StoredResponse

logger = logging.getLogger(__name__)

T = TypeVar("T")


class OffLoopDisk:
    """``DiskTier`` behind one worker thread: awaitable reads and purges, queued writes."""

    def __init__(self, disk: DiskTier) -> None:
        self.disk = disk
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-cache-disk")

    def stored(self) -> bool:
        """Whether the disk tier held any entry when it was opened or since (its index)."""
        return len(self.disk) > 0

    def holds(self, key: str) -> bool:
        """Whether the disk tier has any variant of ``key`` (from its index, no I/O)."""
        return self.disk.holds(key)

    async def variants(self, key: str) -> tuple[StoredResponse, ...]:
        return await self._run(self.disk.variants, key)

    async def purge(self, selector: PurgeSelector, *, soft: bool) -> int:
        return await self._run(lambda: self.disk.purge(selector, soft=soft))

    def put(self, entry: StoredResponse) -> None:
        self._queue(self.disk.put, entry)

    def replace(self, old: StoredResponse, new: StoredResponse) -> None:
        self._queue(lambda: self.disk.replace(old, new))

    def remove_key(self, key: str) -> None:
        self._queue(self.disk.remove_key, key)

    def flush(self) -> None:
        """Wait for every queued operation (tests, and a clean stop)."""
        self._thread.submit(lambda: None).result()

    def close(self) -> None:
        """Finish the queued writes, then stop the thread."""
        self._thread.shutdown(wait=True)

    async def _run(self, call: Callable[..., T], *args: object) -> T:
        return await asyncio.wrap_future(self._thread.submit(call, *args))

    def _queue(self, call: Callable[..., object], *args: object) -> None:
        # Refused once shut down: the node is stopping, and the entry stays in memory only.
        with contextlib.suppress(RuntimeError):
            self._thread.submit(call, *args).add_done_callback(_log_failure)


def _log_failure(done: Future[object]) -> None:
    error = done.exception()
    if error is not None:
        logger.warning("HTTP cache disk tier: a queued write failed: %r", error)
