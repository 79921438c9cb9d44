"""Errors raised by the wasm host; each carries the fields an adapter needs to answer a client.

The edge node maps them to HTTP (see docs/abi.md): ``WasmTrapError`` and ``MemoryLimitError``
to 500, ``DeadlineExceededError`` to 504, ``InvalidOutputError`` (and so
``InvalidCgiOutputError``, ``InvalidReactorOutputError``) and ``OutputTooLargeError`` to 502,
``InstanceLimitError`` (the instance pool is exhausted) to 503 ``instance_limit`` with
``retry-after: 1`` (the node is full for a moment; the handler did nothing wrong).
``ModuleInvalidError`` and ``AbiMismatchError`` happen at load time, never per request.
"""

from __future__ import annotations


class WasmHostError(Exception):
    """Base class of every error the wasm host raises on purpose."""


class ModuleInvalidError(WasmHostError):
    """The bytes are not a module this engine can compile (or a cached artefact is unusable)."""

    def __init__(self, digest: str, reason: str) -> None:
        super().__init__(f"module {digest[:12]} is invalid: {reason}")
        self.digest = digest
        self.reason = reason


class AbiMismatchError(WasmHostError):
    """A valid module that does not have the imports/exports its declared ABI requires."""

    def __init__(self, digest: str, abi: str, reason: str) -> None:
        super().__init__(f"module {digest[:12]} does not implement the {abi} ABI: {reason}")
        self.digest = digest
        self.abi = abi
        self.reason = reason


class HandlerError(WasmHostError):
    """A request failed inside or at the boundary of a handler instance."""


class WasmTrapError(HandlerError):
    """The guest trapped; ``kind`` names the trap ("unreachable", "out of bounds memory access")."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"handler trapped: {kind}" + (f" ({detail})" if detail else ""))
        self.kind = kind
        self.detail = detail


class HandlerExitError(WasmTrapError):
    """A WAGI command ended with a non-zero exit status (``proc_exit(n)`` or ``main`` returning n)."""

    def __init__(self, exit_code: int) -> None:
        super().__init__("exit", f"exit status {exit_code}")
        self.exit_code = exit_code


class DeadlineExceededError(HandlerError):
    """The guest ran past its CPU deadline and was interrupted."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"handler exceeded its deadline of {timeout_s * 1000:g} ms")
        self.timeout_s = timeout_s


class MemoryLimitError(HandlerError):
    """The guest needed more linear memory than its cap allows."""

    def __init__(self, limit_bytes: int, detail: str = "") -> None:
        super().__init__(
            f"handler exceeded its memory limit of {limit_bytes} bytes" + (f" ({detail})" if detail else "")
        )
        self.limit_bytes = limit_bytes
        self.detail = detail


class InstanceLimitError(HandlerError):
    """Every instance slot of the engine's pool is in use; the request may be retried (503)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"no free wasm instance slot: {detail}")
        self.detail = detail


class OutputTooLargeError(HandlerError):
    """The guest produced more output than ``Limits.max_output_bytes``."""

    def __init__(self, limit_bytes: int, size_bytes: int) -> None:
        super().__init__(f"handler output of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")
        self.limit_bytes = limit_bytes
        self.size_bytes = size_bytes


class InvalidOutputError(HandlerError):
    """The guest's response could not be understood."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid handler output: {reason}")
        self.reason = reason


class InvalidCgiOutputError(InvalidOutputError):
    """A WAGI handler printed something that is not a CGI/1.1 response."""


class InvalidReactorOutputError(InvalidOutputError):
    """A reactor handler returned a response that breaks the binary encoding of docs/abi.md."""


class EngineClosedError(WasmHostError):
    """The engine (and its epoch ticker) was closed; no more requests can run on it."""

    def __init__(self) -> None:
        super().__init__("the wasm engine is closed")
