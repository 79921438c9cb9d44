"""The world's fault timeline: ``.edgecdn/chaos-events.jsonl``, one JSON event per line.

Everything that hurts or heals the world is written here with a timestamp: faults that
``edgecdn chaos`` injects (kill, freeze, partition, wan, heal, ...) and what the world's
supervisor sees and does (a child that exited, its restart). ``edgecdn load`` reads the
events that fall inside its run and draws them as markers on its report's charts, so a
load tester sees what failed when next to what clients felt.

Several processes append to the file at once (the supervisor, a chaos command, a chaos
scenario); each event is one ``write`` of one line to a file opened with ``O_APPEND``,
which POSIX keeps whole between concurrent appenders. Readers skip lines they cannot
parse (a line cut by a crash) instead of failing. The format is documented in
docs/chaos.md; keys are only ever added.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from runtime.world_state import state_dir

EVENTS_FILE_NAME = "chaos-events.jsonl"

EventSource = Literal["chaos", "supervisor"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldEvent:
    """One thing that happened to the world.

    ``kind`` is a short lower-case word: for faults the chaos verb (``kill``, ``freeze``,
    ``thaw``, ``partition``, ``wan``, ``heal``), for the supervisor ``exit`` and
    ``restart``. ``target`` names what it happened to (a process name such as
    ``edge-node ap-northeast-2-a``, a region, ``control-plane``); ``message`` is a sentence
    for people; ``details`` holds the figures (signal, exit status, latency, until).
    """

    ts: float
    source: EventSource
    kind: str
    target: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not math.isfinite(self.ts):
            raise ValueError("event timestamp must be finite")
        if not self.kind or not self.target:
            raise ValueError("an event needs a kind and a target")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": round(self.ts, 6),
            "time": datetime.fromtimestamp(self.ts, UTC).isoformat(timespec="milliseconds"),
            "source": self.source,
            "kind": self.kind,
            "target": self.target,
            "message": self.message,
            **({"details": dict(self.details)} if self.details else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorldEvent:
        source = data["source"]
        if source not in ("chaos", "supervisor"):
            raise ValueError(f"unknown event source {source!r}")
        details = data.get("details", {})
        if not isinstance(details, Mapping):
            raise TypeError("details is not an object")
        return cls(
            ts=float(data["ts"]),
            source=source,
            kind=str(data["kind"]),
            target=str(data["target"]),
            message=str(data.get("message", "")),
            details=dict(details),
        )


def events_path(directory: Path | None = None) -> Path:
    """Where the world's events go: ``chaos-events.jsonl`` in the state directory."""
    return (directory or state_dir()) / EVENTS_FILE_NAME


def record_event(
    path: Path,
    *,
    source: EventSource,
    kind: str,
    target: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> WorldEvent:
    """Append one event (stamped ``now``, or the wall clock) to ``path`` and return it."""
    event = WorldEvent(
        ts=time.time() if now is None else now,
        source=source,
        kind=kind,
        target=target,
        message=message,
        details=details or {},
    )
    append_event(path, event)
    return event


def append_event(path: Path, event: WorldEvent) -> None:
    line = (json.dumps(event.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)  # one write of one line: whole between concurrent appenders
    finally:
        os.close(fd)


def read_events(path: Path, *, since: float | None = None, until: float | None = None) -> list[WorldEvent]:
    """Events of ``path`` with ``since <= ts <= until``, oldest first; none when there is no file."""
    return sorted(
        (
            event
            for event in _read_file(path)
            if (since is None or event.ts >= since) and (until is None or event.ts <= until)
        ),
        key=lambda event: event.ts,
    )


def _read_file(path: Path) -> Iterator[WorldEvent]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    yield from parse_events(text)


def parse_events(text: str) -> Iterator[WorldEvent]:
    """The events of ``text`` (lines of the log), skipping lines that are not events."""
    # Lines end at "\n" only: splitlines() would also cut at U+0085 or U+2028 inside a message.
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if isinstance(data, dict):
                yield WorldEvent.from_dict(data)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash, or not ours: the rest still counts
