"""Errors of the load generator; each carries the fields a message is made of."""

from __future__ import annotations


class LoadError(Exception):
    """Base class for load-generator errors; the message is meant for the user."""


class BadInputError(LoadError):
    """A flag, environment variable or scenario value is wrong."""

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ScenarioError(LoadError):
    """A scenario file cannot be read or is malformed."""

    def __init__(self, *, path: str, reason: str) -> None:
        super().__init__(f"scenario {path}: {reason}")
        self.path = path
        self.reason = reason


class TargetUnreachableError(LoadError):
    """The target does not accept connections (checked once before the run starts)."""

    def __init__(self, *, url: str, reason: str) -> None:
        super().__init__(f"target {url} is unreachable: {reason}")
        self.url = url
        self.reason = reason


class NoTargetError(LoadError):
    """No --target given and the running world has no router (yet)."""

    def __init__(self, *, reason: str) -> None:
        super().__init__(f"no target: {reason}; pass --target URL (e.g. an edge node's URL)")
        self.reason = reason


class WorkerFailedError(LoadError):
    """A worker process died or returned no results."""

    def __init__(self, *, index: int, reason: str) -> None:
        super().__init__(f"worker {index} failed: {reason}")
        self.index = index
        self.reason = reason


class EventsUnreadableError(LoadError):
    """The world's events file exists but cannot be read; the run's report goes without events."""

    def __init__(self, *, path: str, reason: str) -> None:
        super().__init__(f"cannot read the events file {path}: {reason}; the report has no events")
        self.path = path
        self.reason = reason
