"""Errors of the tracing library."""

from __future__ import annotations


class TracingError(Exception):
    """Base class for tracing errors."""


class ExportSettingsError(TracingError):
    """An exporter setting (endpoint, headers, sample ratio) is invalid; ``setting`` names it."""

    def __init__(self, *, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason
