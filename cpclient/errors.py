"""Errors of the control-plane session client; each carries the code a NACK reports."""

from __future__ import annotations


class CpClientError(Exception):
    """Base class for cpclient errors."""


class ModuleFetchError(CpClientError):
    """A module could not be downloaded, or its bytes are not what its digest names."""

    def __init__(self, *, sha256: str, code: str, reason: str) -> None:
        super().__init__(f"module {sha256[:12]}: {reason}")
        self.sha256 = sha256
        self.code = code
        self.reason = reason


class ApplyError(CpClientError):
    """Raised by an ``apply`` callback to NACK with a specific code (and module digest)."""

    def __init__(self, *, code: str, reason: str, sha256: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.sha256 = sha256


class ControlPlaneCallError(CpClientError):
    """An operator call failed; ``message`` says what to do, ``code`` is the gRPC status name."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
