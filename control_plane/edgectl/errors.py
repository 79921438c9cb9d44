"""Errors of edgectl: each becomes one ``edgectl: message`` line and a non-zero exit."""

from __future__ import annotations


class EdgectlError(Exception):
    """A failure to report to the operator as one clear line."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
