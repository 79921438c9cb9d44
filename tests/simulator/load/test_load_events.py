"""The world's events for a load run: the run's window, bad lines, and the live tail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.events import EventSource, WorldEvent, append_event, record_event
from simulator.load.errors import EventsUnreadableError
from simulator.load.events import EventTail, run_events

ORIGIN = 1_700_000_000.0


def _event(path: Path, ts: float, kind: str = "kill", source: EventSource = "chaos") -> None:
    event = WorldEvent(ts=ts, source=source, kind=kind, target=f"edge-node {kind}-a", message=f"{kind} it")
    append_event(path, event)


def test_only_events_within_the_run_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "chaos-events.jsonl"
    _event(path, ORIGIN - 5, "before")
    _event(path, ORIGIN + 12.5, "restart", "supervisor")  # written out of order: reported in time order
    _event(path, ORIGIN + 1.25, "kill")
    _event(path, ORIGIN + 30, "after")
    record_event(
        path,
        source="chaos",
        kind="wan",
        target="eu-central-1",
        message="+80 ms",
        details={"ms": 80},
        now=ORIGIN + 20,
    )
    events = run_events(path, origin_ts=ORIGIN, end_ts=ORIGIN + 20)
    assert [(e["t_s"], e["kind"], e["source"]) for e in events] == [
        (1.25, "kill", "chaos"),
        (12.5, "restart", "supervisor"),
        (20.0, "wan", "chaos"),  # the window's ends are inside it
    ]
    first = events[0]
    assert set(first) == {"t_s", "time", "source", "kind", "target", "message"}
    assert first["time"] == "2023-11-14T22:13:21.250+00:00"
    assert first["target"] == "edge-node kill-a"
    assert first["message"] == "kill it"
    assert events[2]["details"] == {"ms": 80}


def test_malformed_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "chaos-events.jsonl"
    good = {"ts": ORIGIN + 2, "source": "chaos", "kind": "freeze", "target": "router", "message": "SIGSTOP"}
    lines = [
        json.dumps(good),
        '{"ts": 1700000003, "source": "chaos", "kind": "thaw", "tar',  # cut short by a crash
        "not json at all",
        "[1, 2, 3]",
        json.dumps({"ts": ORIGIN + 3, "source": "chaos", "kind": "kill"}),  # no target
        json.dumps({**good, "source": "somebody"}),
        json.dumps({**good, "ts": "soon"}),
        '{"ts": NaN, "source": "chaos", "kind": "kill", "target": "x"}',
        json.dumps({**good, "details": [1]}),
        "",
        json.dumps({**good, "ts": ORIGIN + 4, "kind": "thaw", "message": "SIGCONT"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    events = run_events(path, origin_ts=ORIGIN, end_ts=ORIGIN + 10)
    assert [(e["kind"], e["t_s"]) for e in events] == [("freeze", 2.0), ("thaw", 4.0)]


def test_no_file_no_events_and_an_unreadable_one_says_why(tmp_path: Path) -> None:
    assert run_events(tmp_path / "none.jsonl", origin_ts=ORIGIN, end_ts=ORIGIN + 1) == []
    assert run_events(None, origin_ts=ORIGIN, end_ts=ORIGIN + 1) == []
    with pytest.raises(EventsUnreadableError, match=f"cannot read the events file {tmp_path}"):
        run_events(tmp_path, origin_ts=ORIGIN, end_ts=ORIGIN + 1)


def test_the_tail_sees_only_what_is_appended_during_the_run(tmp_path: Path) -> None:
    path = tmp_path / "chaos-events.jsonl"
    _event(path, ORIGIN - 100, "old")
    tail = EventTail(path, since_ts=ORIGIN, every_s=0.0)
    assert tail.poll() == []
    _event(path, ORIGIN + 1, "kill")
    _event(path, ORIGIN - 1, "late-stamped")  # appended now but stamped before the run: not news
    with path.open("a") as file:
        file.write('{"ts": 1700000002, "source": "supervisor", "kind": "ex')  # still being written
    assert [e.kind for e in tail.poll()] == ["kill"]
    with path.open("a") as file:
        file.write('it", "target": "router", "message": ""}\n')
    assert [(e.kind, e.source) for e in tail.poll()] == [("exit", "supervisor")]
    assert tail.poll() == []
    path.write_text("")  # rotated: read from the start again
    _event(path, ORIGIN + 5, "heal")
    assert [e.kind for e in tail.poll()] == ["heal"]


def test_the_tail_looks_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "chaos-events.jsonl"
    tail = EventTail(path, since_ts=ORIGIN, every_s=3600.0)
    _event(path, ORIGIN + 1, "kill")
    assert tail.poll() == []  # too soon: not even a stat
    missing = EventTail(tmp_path / "none.jsonl", since_ts=ORIGIN, every_s=0.0)
    assert missing.poll() == []
