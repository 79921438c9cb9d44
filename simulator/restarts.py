"""When the world's supervisor starts a dead child again: a pure restart policy.

Like Kubernetes' ``restartPolicy: Always`` with its CrashLoopBackOff: the first restart
waits ``initial_s``, each further crash in a row doubles the wait up to ``maximum_s``, and
a child that stayed up for ``healthy_after_s`` has its count of crashes in a row reset, so
a process that dies once a day is restarted at once and a crash loop does not spin the CPU.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    """Back-off between restarts of one child."""

    initial_s: float = 0.5
    maximum_s: float = 30.0
    healthy_after_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.maximum_s:
            raise ValueError("need 0 < initial_s <= maximum_s")
        if not self.healthy_after_s > 0:
            raise ValueError("healthy_after_s must be positive")

    def crashes_in_a_row(self, previous: int, ran_for_s: float) -> int:
        """Crashes in a row after one more exit of a child that had run ``ran_for_s``."""
        return 1 if ran_for_s >= self.healthy_after_s else previous + 1

    def delay(self, crashes_in_a_row: int) -> float:
        """Seconds to wait before restarting a child that crashed ``crashes_in_a_row`` times."""
        if crashes_in_a_row <= 0:
            return 0.0
        exponent = min(crashes_in_a_row - 1, 64)  # 2**64 x initial is past any maximum
        return min(self.maximum_s, self.initial_s * math.pow(2.0, exponent))


def describe_exit(returncode: int | None) -> str:
    """A process's end as people say it: ``killed by SIGKILL``, ``exited with status 3``."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    if returncode == 0:
        return "exited with status 0"
    return f"exited with status {returncode}"
