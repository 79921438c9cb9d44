"""The world's event log: appended whole by concurrent writers, read back tolerant of damage."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.events import WorldEvent, append_event, events_path, read_events, record_event


def test_events_round_trip_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    record_event(
        path, source="chaos", kind="kill", target="router", message="m", now=20.0, details={"signal": "KILL"}
    )
    record_event(path, source="supervisor", kind="restart", target="edge-router", message="back", now=10.0)
    events = read_events(path)
    assert [(e.ts, e.kind) for e in events] == [(10.0, "restart"), (20.0, "kill")]
    assert events[1].details == {"signal": "KILL"}
    assert read_events(path, since=15) == [events[1]]
    assert read_events(path, until=15) == [events[0]]


def test_each_line_has_the_documented_keys(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    record_event(
        path, source="chaos", kind="partition", target="ap-northeast-2", message="cut", now=1764868148.5
    )
    line = json.loads(path.read_text())
    assert line == {
        "ts": 1764868148.5,
        "time": "2025-12-04T17:09:08.500+00:00",
        "source": "chaos",
        "kind": "partition",
        "target": "ap-northeast-2",
        "message": "cut",
    }


def test_damaged_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    record_event(path, source="chaos", kind="heal", target="world", message="ok", now=1.0)
    with path.open("a") as file:
        file.write('{"ts": 2, "source": "chaos", "kind": "kil\n')  # cut short by a crash
        file.write("[1, 2]\n\n")
        file.write(json.dumps({"ts": 3, "source": "someone", "kind": "x", "target": "y"}) + "\n")
    record_event(path, source="chaos", kind="heal", target="world", message="again", now=4.0)
    assert [e.message for e in read_events(path)] == ["ok", "again"]


def test_no_file_is_no_events(tmp_path: Path) -> None:
    assert read_events(tmp_path / "none.jsonl") == []


def test_the_file_lives_in_the_state_directory(tmp_path: Path) -> None:
    assert events_path(tmp_path) == tmp_path / "chaos-events.jsonl"


def test_an_event_needs_a_kind_a_target_and_a_finite_time() -> None:
    with pytest.raises(ValueError, match="kind and a target"):
        WorldEvent(ts=1, source="chaos", kind="", target="x", message="")
    with pytest.raises(ValueError, match="finite"):
        WorldEvent(ts=float("nan"), source="chaos", kind="k", target="x", message="")


def _append_many(path: str, writer: int) -> None:
    for index in range(200):
        record_event(
            Path(path), source="chaos", kind="kill", target=f"w{writer}", message="x" * 300, now=index
        )


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writers = [multiprocessing.Process(target=_append_many, args=(str(path), n)) for n in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(30)
    assert len(path.read_text().splitlines()) == 800
    assert len(read_events(path)) == 800


@given(
    message=st.text(max_size=200),
    details=st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=4),
)
def test_any_message_and_details_survive_the_file(
    tmp_path_factory: pytest.TempPathFactory, message: str, details: dict[str, object]
) -> None:
    path = tmp_path_factory.mktemp("e") / "events.jsonl"
    event = WorldEvent(ts=5.0, source="supervisor", kind="exit", target="t", message=message, details=details)
    append_event(path, event)
    assert read_events(path) == [event]
