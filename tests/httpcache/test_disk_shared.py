"""One disk tier directory shared by several processes' tiers (an edge node's workers)."""

from __future__ import annotations

from pathlib import Path

from httpcache.disk import DiskTier
from httpcache.model import PurgeSelector
from tests.httpcache.test_store import resp


def tiers(directory: Path) -> tuple[DiskTier, DiskTier]:
    return (
        DiskTier(directory, max_bytes=100_000, max_entry_bytes=10_000, shared=True),
        DiskTier(directory, max_bytes=100_000, max_entry_bytes=10_000, shared=True),
    )


def test_a_file_one_worker_wrote_is_found_by_another_at_once(tmp_path: Path) -> None:
    first, second = tiers(tmp_path)
    korean = resp(body=b"ko", vary=(("accept-language", "ko"),))
    japanese = resp(body=b"ja", vary=(("accept-language", "ja"),))
    first.put(korean)
    second.put(japanese)
    assert second.holds("/a")
    assert set(second.variants("/a")) == {korean, japanese}
    assert set(first.variants("/a")) == {korean, japanese}


def test_a_purge_by_one_worker_is_seen_by_the_other(tmp_path: Path) -> None:
    first, second = tiers(tmp_path)
    first.put(resp(tags=("t",)))
    assert second.variants("/a")
    assert second.purge(PurgeSelector(tags=("t",)), soft=False) == 1
    assert first.variants("/a") == ()  # gone from disk: dropped from its index too


def test_an_unshared_tier_reads_only_its_index(tmp_path: Path) -> None:
    DiskTier(tmp_path, max_bytes=100_000, max_entry_bytes=10_000).put(resp())
    alone = DiskTier(tmp_path / "other", max_bytes=100_000, max_entry_bytes=10_000)
    assert not alone.holds("/a")
