"""The load an edge node reports in its heartbeats: rates since the last report."""

from __future__ import annotations

import time
from collections.abc import Callable

from protos.edgecdn.v1 import common_pb2

SERVER_ERROR = 500


class LoadTracker:
    """Counts requests as they finish; ``snapshot`` turns the counts into rates."""

    def __init__(self, *, capacity_rps: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity_rps = capacity_rps
        self.requests_total = 0
        self.errors_total = 0
        self.in_flight = 0
        self._clock = clock
        self._last = (clock(), 0, 0)

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, status: int) -> None:
        self.in_flight -= 1
        self.requests_total += 1
        if status >= SERVER_ERROR:
            self.errors_total += 1

    def snapshot(self) -> common_pb2.Load:
        now = self._clock()
        then, requests, errors = self._last
        elapsed = max(now - then, 1e-9)
        self._last = (now, self.requests_total, self.errors_total)
        rps = (self.requests_total - requests) / elapsed
        return common_pb2.Load(
            requests_per_second=rps,
            in_flight=max(0, self.in_flight),
            errors_per_second=(self.errors_total - errors) / elapsed,
            requests_total=self.requests_total,
            errors_total=self.errors_total,
            utilization=min(1.0, rps / self.capacity_rps) if self.capacity_rps > 0 else 0.0,
        )
