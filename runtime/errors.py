"""Errors of the shared process runtime."""

from __future__ import annotations


class RuntimeSupportError(Exception):
    """Base class for errors raised by the shared process runtime."""


class ReadyFileError(RuntimeSupportError):
    """A ready file exists but does not hold a ready report."""

    def __init__(self, *, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ConfigError(RuntimeSupportError):
    """A process configuration value is invalid; ``field`` names the flag or key."""

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class WorldStateError(RuntimeSupportError):
    """The running world's state file is missing or malformed."""

    def __init__(self, *, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
