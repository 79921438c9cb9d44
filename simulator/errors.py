"""Errors of the ``edgecdn`` command."""

from __future__ import annotations


class SimulatorError(Exception):
    """Base class for errors of the edgecdn command."""


class ChildFailedError(SimulatorError):
    """A child process of the world exited or never became ready."""

    def __init__(self, *, name: str, reason: str, log_tail: str = "") -> None:
        message = f"{name} {reason}"
        if log_tail:
            message += f"; last lines of its log:\n{log_tail}"
        super().__init__(message)
        self.name = name
        self.reason = reason
        self.log_tail = log_tail


class WorldAlreadyRunningError(SimulatorError):
    """Another ``edgecdn up`` already runs a world from this state directory."""

    def __init__(self, *, pid: int, state_file: str) -> None:
        super().__init__(
            f"a world is already running (edgecdn up, pid {pid}; see {state_file}); stop it first"
        )
        self.pid = pid
        self.state_file = state_file


class ChaosError(SimulatorError):
    """A fault cannot be injected: a bad target or value, or the world refused it."""
