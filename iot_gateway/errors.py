"""Errors of the gateway process: one base class, specific ones that carry their fields.

``reason`` is a short stable word (counted in ``/metrics`` and logged once a minute);
``detail`` is the message a user reads in a command result.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of the gateway's errors."""

    def __init__(self, *, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ModuleRefusedError(GatewayError):
    """A module that cannot be run: not downloadable, wrong digest, not wasm, fails its trial."""

    def __init__(self, *, sha256: str, reason: str, detail: str) -> None:
        super().__init__(reason=reason, detail=detail)
        self.sha256 = sha256


class BatchError(GatewayError):
    """The module failed on one batch: a trap, a broken limit or output that is not a result."""
