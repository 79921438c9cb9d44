"""The fault state file: the faults in force, with wall-clock expiry, so that a relay killed
and restarted by its supervisor keeps an unexpired partition and forgets an expired one.

The file is rewritten atomically after every change. In memory, faults live on the
monotonic clock (which never jumps); here they are converted to and from wall-clock time,
the only time that means anything to the next process.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faultrelay.clock import Clock
from faultrelay.errors import StateFileError
from faultrelay.faults import FAULT_KINDS, Fault, FaultBook
from runtime.files import write_atomically

logger = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Restored:
    """What loading the state file did: faults put back in force, and the ones dropped."""

    restored: tuple[Fault, ...] = ()
    expired: tuple[str, ...] = ()  # links whose fault ran out while the relay was down
    unknown: tuple[str, ...] = ()  # links this relay no longer carries


class FaultStore:
    """Reads and writes the state file at ``path``; with no path, keeps nothing."""

    def __init__(self, path: Path | None, clock: Clock) -> None:
        self._path = path
        self._clock = clock

    def save(self, book: FaultBook) -> None:
        if self._path is None:
            return
        mono, wall = self._clock.monotonic(), self._clock.wall()
        faults = [
            {
                "link": fault.link,
                "kind": fault.kind,
                "reason": fault.reason,
                "set_at": wall + (fault.set_at - mono),
                "expires_at": None if fault.expires_at is None else wall + (fault.expires_at - mono),
            }
            for fault in book.faults().values()
        ]
        write_atomically(self._path, json.dumps({"version": STATE_VERSION, "faults": faults}, indent=1))

    def load(self, book: FaultBook) -> Restored:
        """Put the file's unexpired faults for known links into ``book``."""
        if self._path is None:
            return Restored()
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Restored()
        except (OSError, UnicodeDecodeError) as exc:
            raise StateFileError(path=str(self._path), reason=str(exc)) from exc
        mono, wall = self._clock.monotonic(), self._clock.wall()
        restored: list[Fault] = []
        expired: list[str] = []
        unknown: list[str] = []
        for entry in self._entries(text):
            link = entry["link"]
            expires_wall = entry["expires_at"]
            if link not in book.links:
                unknown.append(link)
            elif expires_wall is not None and expires_wall <= wall:
                expired.append(link)
            else:
                fault = Fault(
                    link=link,
                    kind=entry["kind"],
                    reason=entry["reason"],
                    set_at=mono - (wall - entry["set_at"]),
                    expires_at=None if expires_wall is None else mono + (expires_wall - wall),
                )
                book.set(fault)
                restored.append(fault)
        return Restored(restored=tuple(restored), expired=tuple(expired), unknown=tuple(unknown))

    def _entries(self, text: str) -> list[dict[str, Any]]:
        try:
            data = json.loads(text)
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
            entries = [_check_entry(entry) for entry in data["faults"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateFileError(path=str(self._path), reason=f"not a fault state file: {exc}") from exc
        return entries


def _check_entry(entry: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(entry["link"], str) or entry["kind"] not in FAULT_KINDS:
        raise ValueError(f"bad fault entry {entry!r}")
    if not isinstance(entry.get("reason", ""), str):
        raise TypeError(f"bad reason in {entry!r}")
    for key in ("set_at", "expires_at"):
        value = entry[key]
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
            raise ValueError(f"bad {key} in {entry!r}")
    if entry["set_at"] is None:
        raise ValueError(f"set_at missing in {entry!r}")
    return {"reason": "", **entry}
