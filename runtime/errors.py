"""Errors of the shared process runtime."""

from __future__ import annotations

from typing import Any


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


class HttpFacingError(Exception):
    """An error a process answers to an HTTP client: its status, a stable ``kind``, and extra
    JSON fields. The edge node and the router each derive their errors from it; the HTTP
    adapter turns one into ``{"error": kind, "message": ..., **details}``."""

    status = 500
    kind = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"error": self.kind, "message": self.message, **self.details}
