"""What a process needs to answer its own failures without telling the client its insides:
a request id to name the answer, its log line and its trace, and a budget for those lines.

A client of an edge node or the router gets only an error's kind, a fixed sentence and
the request id; the detail (a node's address, an OS error, a module's digest) goes to one
log line under that id. Under a flood of failing requests those lines must not cost more
than the requests themselves, hence :class:`LogBudget`.
"""

from __future__ import annotations

import os

# Failure lines logged per second at most, by either process.
FAILURE_LOG_PER_S = 50


def new_request_id() -> str:
    """A request id: 64 random bits in hex, unique enough to find one line among a process's."""
    return os.urandom(8).hex()


class LogBudget:
    """At most ``per_second`` lines a second. ``take`` says whether a line may be written:
    None if not (it is counted), else how many were refused since the last one written."""

    __slots__ = ("_left", "_per_second", "_second", "_suppressed")

    def __init__(self, per_second: int = FAILURE_LOG_PER_S) -> None:
        self._per_second = per_second
        self._second = -1
        self._left = 0
        self._suppressed = 0

    def take(self, now: float) -> int | None:
        second = int(now)
        if second != self._second:
            self._second = second
            self._left = self._per_second
        if self._left <= 0:
            self._suppressed += 1
            return None
        self._left -= 1
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed
