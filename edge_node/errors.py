"""Errors of the edge node. Each knows the HTTP status and the short ``kind`` a client sees.

The HTTP adapter turns one into a JSON body with ``client_json``: for the client's own
mistakes (404, 413, 431) and a node without an app, ``{"error": kind, "message": ..., ...}``
with every detail; for failures inside the node, its handlers or its origins, only the kind,
a fixed sentence and the request id. What went wrong there (a module's sha256, wasmtime's
message, an origin's address) is the operator's business: it goes to the node's log and
the request's trace, never to the client. wasm_host errors are mapped here too, so the
mapping lives in one place.
"""

from __future__ import annotations

from typing import Any

from runtime.errors import HttpFacingError
from wasm_host.errors import (
    DeadlineExceededError,
    HandlerError,
    InstanceLimitError,
    InvalidOutputError,
    MemoryLimitError,
    OutputTooLargeError,
    WasmTrapError,
)


class EdgeNodeError(HttpFacingError):
    """Base class of the edge node's errors (status, ``kind``, JSON fields: see HttpFacingError)."""

    kind = "internal_error"
    # What a client is told instead of the message and details; None: the message and
    # details are the client's to see (its own request was refused, or a plain fact).
    public_message: str | None = "the edge node failed unexpectedly"
    # Set by the adapter when it answers: the id the client, the log and the trace share.
    request_id = ""
    # Headers the answer carries besides content-type and x-request-id (lower-case names).
    answer_headers: tuple[tuple[str, str], ...] = ()

    def client_json(self, request_id: str) -> dict[str, Any]:
        """The JSON body a client gets: never a digest, a wasmtime message or an origin."""
        if self.public_message is None:
            return {**self.to_json(), "request_id": request_id}
        return {"error": self.kind, "message": self.public_message, "request_id": request_id}


class RouteNotFoundError(EdgeNodeError):
    status = 404
    kind = "route_not_found"
    public_message = None


class NoAppError(EdgeNodeError):
    status = 503
    kind = "no_app"
    public_message = None


class BodyTooLargeError(EdgeNodeError):
    status = 413
    kind = "body_too_large"
    public_message = None


class HeadersTooLargeError(EdgeNodeError):
    status = 431
    kind = "headers_too_large"
    public_message = None


class HandlerFailedError(EdgeNodeError):
    """A wasm handler failed; status and kind follow the wasm_host error it wraps."""

    def __init__(self, error: HandlerError, *, module: str, digest: str) -> None:
        status, kind, extra = _classify(error)
        super().__init__(str(error), module=module, digest=digest, **extra)
        self.status = status
        self.kind = kind
        self.public_message = HANDLER_MESSAGES.get(kind, HANDLER_MESSAGES["handler_failed"])
        if kind == "instance_limit":
            # The pool frees a slot as soon as any request ends: worth retrying at once.
            self.answer_headers = (("retry-after", str(INSTANCE_LIMIT_RETRY_AFTER_S)),)


class OriginError(EdgeNodeError):
    status = 502
    kind = "origin_unreachable"
    public_message = "the origin failed or did not answer in time"


class ConfigLoadError(EdgeNodeError):
    """The app could not be loaded (manifest, module file or module compile)."""

    kind = "app_load_failed"
    public_message = "the app could not be loaded"


# Seconds a client is told to wait (``retry-after``) when every wasm instance slot is in use.
INSTANCE_LIMIT_RETRY_AFTER_S = 1

# What a client is told of a failed handler, by kind: what happened, not where or why.
HANDLER_MESSAGES = {
    "deadline_exceeded": "the handler ran past its time limit",
    "memory_limit_exceeded": "the handler needed more memory than it may use",
    "output_too_large": "the handler's answer was larger than it may be",
    "invalid_handler_output": "the handler's answer was not a valid response",
    "handler_trap": "the handler failed",
    "instance_limit": "the edge node is busy; retry shortly",
    "handler_failed": "the handler failed",
}


def _classify(error: HandlerError) -> tuple[int, str, dict[str, Any]]:  # noqa: PLR0911 - one return per kind
    if isinstance(error, DeadlineExceededError):
        return 504, "deadline_exceeded", {"timeout_ms": round(error.timeout_s * 1000, 3)}
    if isinstance(error, MemoryLimitError):
        return 500, "memory_limit_exceeded", {"limit_bytes": error.limit_bytes}
    if isinstance(error, OutputTooLargeError):
        return 502, "output_too_large", {"limit_bytes": error.limit_bytes}
    if isinstance(error, InvalidOutputError):
        return 502, "invalid_handler_output", {"reason": error.reason}
    if isinstance(error, InstanceLimitError):
        # Not the handler's fault nor the request's: the node is full for now (503, retryable).
        return 503, "instance_limit", {}
    if isinstance(error, WasmTrapError):
        return 500, "handler_trap", {"trap": error.kind}
    return 500, "handler_failed", {}
