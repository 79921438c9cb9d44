"""The disk tier behind its own thread (httpcache.offloop): queued writes in order, awaited
reads and purges, and every disk call made off the event loop's thread."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from httpcache.disk import DiskTier
from httpcache.model import PurgeSelector, StoredResponse
from httpcache.offloop import OffLoopDisk
from tests.httpcache.test_store import resp


class ThreadRecordingDisk(DiskTier):
    """A real disk tier that notes which thread each read and write ran on."""

    threads: set[str]

    def variants(self, key: str) -> tuple[StoredResponse, ...]:
        self.threads.add(threading.current_thread().name)
        return super().variants(key)

    def put(self, entry: StoredResponse) -> bool:
        self.threads.add(threading.current_thread().name)
        return super().put(entry)


async def test_writes_reads_and_purges_run_on_the_disk_thread(tmp_path: Path) -> None:
    tier = ThreadRecordingDisk(tmp_path, max_bytes=100_000, max_entry_bytes=10_000)
    tier.threads = set()
    disk = OffLoopDisk(tier)
    try:
        entry = resp(tags=("t",))
        disk.put(entry)
        assert await disk.variants("/a") == (entry,)  # queued after the put: sees it
        assert disk.holds("/a")
        newer = dataclasses.replace(entry, body=b"newer")
        disk.replace(entry, newer)
        assert await disk.variants("/a") == (newer,)
        assert await disk.purge(PurgeSelector(tags=("t",)), soft=False) == 1
        assert not disk.holds("/a")
        assert tier.threads
        assert all(name.startswith("edge-cache-disk") for name in tier.threads)
    finally:
        disk.close()


async def test_remove_key_and_close_finish_queued_writes(tmp_path: Path) -> None:
    disk = OffLoopDisk(DiskTier(tmp_path, max_bytes=100_000, max_entry_bytes=10_000))
    disk.put(resp())
    disk.remove_key("/a")
    disk.put(resp(key="/b"))
    disk.close()
    disk.put(resp(key="/c"))  # after close: dropped, not raised
    reopened = DiskTier(tmp_path, max_bytes=100_000, max_entry_bytes=10_000)
    assert (reopened.holds("/a"), reopened.holds("/b"), reopened.holds("/c")) == (False, True, False)
