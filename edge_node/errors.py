"""Errors of the edge node. Each knows the HTTP status and the short ``kind`` a client sees.

The aiohttp adapter turns them into a JSON body ``{"error": kind, "message": ..., ...}``;
wasm_host errors are mapped here too, so the mapping lives in one place.
"""

from __future__ import annotations

from typing import Any

from runtime.errors import HttpFacingError
from wasm_host.errors import (
    DeadlineExceededError,
    HandlerError,
    InvalidOutputError,
    MemoryLimitError,
    OutputTooLargeError,
    WasmTrapError,
)


class EdgeNodeError(HttpFacingError):
    """Base class of the edge node's errors (status, ``kind``, JSON fields: see HttpFacingError)."""

    kind = "internal_error"


class RouteNotFoundError(EdgeNodeError):
    status = 404
    kind = "route_not_found"


class NoAppError(EdgeNodeError):
    status = 503
    kind = "no_app"


class BodyTooLargeError(EdgeNodeError):
    status = 413
    kind = "body_too_large"


class HeadersTooLargeError(EdgeNodeError):
    status = 431
    kind = "headers_too_large"


class HandlerFailedError(EdgeNodeError):
    """A wasm handler failed; status and kind follow the wasm_host error it wraps."""

    def __init__(self, error: HandlerError, *, module: str, digest: str) -> None:
        status, kind, extra = _classify(error)
        super().__init__(str(error), module=module, digest=digest, **extra)
        self.status = status
        self.kind = kind


class OriginError(EdgeNodeError):
    status = 502
    kind = "origin_unreachable"


class ConfigLoadError(EdgeNodeError):
    """The app could not be loaded (manifest, module file or module compile)."""

    kind = "app_load_failed"


def _classify(error: HandlerError) -> tuple[int, str, dict[str, Any]]:
    if isinstance(error, DeadlineExceededError):
        return 504, "deadline_exceeded", {"timeout_ms": round(error.timeout_s * 1000, 3)}
    if isinstance(error, MemoryLimitError):
        return 500, "memory_limit_exceeded", {"limit_bytes": error.limit_bytes}
    if isinstance(error, OutputTooLargeError):
        return 502, "output_too_large", {"limit_bytes": error.limit_bytes}
    if isinstance(error, InvalidOutputError):
        return 502, "invalid_handler_output", {"reason": error.reason}
    if isinstance(error, WasmTrapError):
        return 500, "handler_trap", {"trap": error.kind}
    return 500, "handler_failed", {}
