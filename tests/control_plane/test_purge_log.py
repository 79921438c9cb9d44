"""The purge log (control_plane.purge_log): what a node that was away is sent, in SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane import purge_log
from control_plane.db import Database
from control_plane.purge_log import LoggedPurge, PurgeLog, replay, what_to_replay
from protos.edgecdn.v1 import common_pb2, nodes_pb2

EVERYONE = common_pb2.Selector(all=True)
SEOUL = common_pb2.Selector(regions=["ap-northeast-2"])


def hello(sequence: int, *, empty: bool = False, region: str = "ap-northeast-2") -> nodes_pb2.NodeHello:
    return nodes_pb2.NodeHello(
        node_id=f"{region}-a", region=region, purge_sequence=sequence, cache_empty=empty
    )


def logged(sequences: range, target: common_pb2.Selector = EVERYONE) -> list[LoggedPurge]:
    return [LoggedPurge(n, target, nodes_pb2.CachePurge(purge_id=f"p{n}", sequence=n)) for n in sequences]


@pytest.mark.parametrize(
    ("reported", "empty", "oldest", "newest", "expected"),
    [
        (0, True, 1, 5, "none"),  # nothing cached from before: nothing applies
        (5, False, 1, 5, "none"),  # up to date
        (0, False, 0, 0, "none"),  # no purge ever
        (3, False, 1, 5, "log"),
        (0, False, 1, 5, "log"),  # never purged, the whole log retained
        (2, False, 4, 9, "everything"),  # the log was trimmed past it
        (7, False, 1, 5, "everything"),  # another log (a control plane started afresh)
    ],
)
def test_what_to_replay(reported: int, empty: bool, oldest: int, newest: int, expected: str) -> None:
    assert what_to_replay(hello(reported, empty=empty), oldest=oldest, newest=newest) == expected


@given(st.integers(1, 40), st.integers(0, 60), st.integers(0, 60))
def test_a_node_gets_every_purge_it_missed_or_everything_marked_stale(
    oldest: int, span: int, reported: int
) -> None:
    newest = oldest + span
    sent = replay(
        logged(range(reported + 1, newest + 1)), oldest=oldest, newest=newest, hello=hello(reported)
    )
    if reported == newest:
        assert sent == []
    elif oldest - 1 <= reported < newest:
        assert [p.sequence for p in sent] == list(range(reported + 1, newest + 1))
    else:
        assert [(p.everything, p.soft, p.sequence) for p in sent] == [(True, True, newest)]


def test_purges_for_other_regions_are_not_replayed() -> None:
    entries = logged(range(1, 3), SEOUL) + logged(range(3, 4))
    sent = replay(entries, oldest=1, newest=3, hello=hello(0, region="eu-central-1"))
    assert [p.sequence for p in sent] == [3]


def test_the_log_in_sqlite_numbers_keeps_and_trims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(purge_log, "RETAINED", 3)
    db = Database(tmp_path / "cp.sqlite3")
    log = PurgeLog(db)
    assert log.bounds() == (0, 0)
    for n in range(1, 6):
        purge = nodes_pb2.CachePurge(purge_id=f"p{n}", tags=["t"])
        assert log.append(SEOUL if n == 4 else EVERYONE, purge) == n
        assert purge.sequence == n
    assert log.bounds() == (3, 5)
    assert [p.purge_id for p in log.missed(hello(2))] == ["p3", "p4", "p5"]
    assert [p.purge_id for p in log.missed(hello(3, region="eu-central-1"))] == ["p5"]
    assert [p.everything for p in log.missed(hello(1))] == [True]  # trimmed past it
    db.close()
    reopened = PurgeLog(Database(tmp_path / "cp.sqlite3"))
    assert reopened.bounds() == (3, 5)  # survives a restart
