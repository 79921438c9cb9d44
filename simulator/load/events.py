"""The world's events during a load run: read for the report, tailed for the live view.

``edgecdn chaos`` and the world's supervisor append faults, exits and restarts to the
events file (``runtime/events.py``). The report keeps those whose wall-clock time falls
inside the run, each placed at ``t_s`` seconds from the timeline's second 0, so the
charts can mark them where clients felt them. The live view only looks at what was
appended since it last looked, at most once a second.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.events import WorldEvent, parse_events, read_events
from simulator.load.errors import EventsUnreadableError

POLL_EVERY_S = 1.0
MAX_TAIL_BYTES = 1 << 20  # a burst bigger than this between two looks is skipped, not parsed


def run_events(path: Path | None, *, origin_ts: float, end_ts: float) -> list[dict[str, Any]]:
    """The report's ``events``: those of ``path`` from ``origin_ts`` to ``end_ts`` (unix
    seconds), oldest first, each placed ``t_s`` seconds after ``origin_ts``."""
    if path is None:
        return []
    try:
        events = read_events(path, since=origin_ts, until=end_ts)
    except OSError as exc:  # a directory, no permission: the run's figures still count
        raise EventsUnreadableError(path=str(path), reason=exc.strerror or str(exc)) from exc
    return report_events(events, origin_ts=origin_ts)


def report_events(events: Sequence[WorldEvent], *, origin_ts: float) -> list[dict[str, Any]]:
    """The report's ``events``: each placed ``t_s`` seconds into the run."""
    entries = []
    for event in events:
        whole = event.to_dict()
        entry: dict[str, Any] = {
            "t_s": round(event.ts - origin_ts, 3),
            "time": whole["time"],
            "source": event.source,
            "kind": event.kind,
            "target": event.target,
            "message": event.message,
        }
        if event.details:
            entry["details"] = whole["details"]
        entries.append(entry)
    return entries


def event_label(kind: str, target: str) -> str:
    """What a chart marker says: ``kill edge-node ap-northeast-2-a``."""
    return f"{kind} {target}"


class EventTail:
    """New events appended to the file since the run started, read a line at a time.

    Only the bytes appended since the previous look are read; a line still being written
    waits for the next look. A file that shrank (rotated, removed) is read from its start.
    """

    def __init__(self, path: Path, *, since_ts: float, every_s: float = POLL_EVERY_S) -> None:
        self.path = path
        self.since_ts = since_ts
        self.every_s = every_s
        self._offset = self._size()  # what was there before the run is not news
        self._last_look = time.monotonic()

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def poll(self) -> list[WorldEvent]:
        """Events appended since the last look; nothing when looked less than ``every_s`` ago."""
        now = time.monotonic()
        if now - self._last_look < self.every_s:
            return []
        self._last_look = now
        size = self._size()
        if size < self._offset:
            self._offset = 0
        if size == self._offset:
            return []
        if size - self._offset > MAX_TAIL_BYTES:
            self._offset = size
            return []
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                chunk = file.read(size - self._offset)
        except OSError:
            return []
        complete = chunk.rfind(b"\n") + 1
        self._offset += complete
        return [event for event in _parse(chunk[:complete]) if event.ts >= self.since_ts]


def _parse(chunk: bytes) -> list[WorldEvent]:
    return list(parse_events(chunk.decode("utf-8", errors="replace")))
