"""The ``wasi-http`` ABI: run a component exporting ``wasi:http/incoming-handler@0.2.x``.

This is how Spin 2+, ``wasmtime serve`` and wasmCloud run HTTP components, so a component
built with Spin's SDK runs here unchanged. Per request, like the other two ABIs: a fresh
store (memory cap, epoch deadline) and a fresh instance, the request handed in as host
resources (``component_http``), the response read back from the ``response-outparam``
once ``handle`` returns, and every failure turned into the host's ``HandlerError``s. The
linker (our WASI 0.2 and ``wasi:http`` definitions, traps for the rest) is built once per
handler. With the manifest's ``allowed_outbound_hosts`` (an ``OutboundGrant``) the guest may
call out through ``wasi:http/outgoing-handler`` (``component_outgoing``) under edge_http's
rules: each run starts its own outbound budget (``OutboundRun``) with the context's fetcher.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import wasmtime
from wasmtime.component import Component, ExportIndex, Linker

from wasm_host import component_bytes
from wasm_host.component_cache import CompiledComponent
from wasm_host.component_cli import define_cli_clocks_random
from wasm_host.component_http import (
    INCOMING_HANDLER,
    HttpExchange,
    define_http,
    new_request_resources,
)
from wasm_host.component_outgoing import (
    OUTBOUND_REFUSAL,
    OUTGOING_HANDLER,
    TYPE_FUNCS,
    define_outgoing_handler,
)
from wasm_host.component_wasi import (
    Definer,
    GuestExitError,
    HostRefusalError,
    define_io,
    set_current,
)
from wasm_host.config import Limits
from wasm_host.engine import WasmEngine
from wasm_host.errors import (
    AbiMismatchError,
    DeadlineExceededError,
    HandlerError,
    HandlerExitError,
    InstanceLimitError,
    InvalidOutputError,
    MemoryLimitError,
    WasmTrapError,
)
from wasm_host.httpfields import HOP_BY_HOP, MAX_RESPONSE_HEADERS, field_problem, status_problem
from wasm_host.outbound import OutboundClient, OutboundGrant, OutboundRun
from wasm_host.sandbox import check_granted_env
from wasm_host.values import WasmRequest, WasmResponse

ABI = "wasi-http"
# What a guest's runtime prints when its allocator met the store's memory cap (Python's
# MemoryError, Rust's alloc error handler): wasmtime makes memory.grow fail rather than trap.
_OUT_OF_MEMORY_MARKS = (b"MemoryError", b"memory allocation of")


class OutboundNotAllowedError(WasmTrapError):
    """The component called ``wasi:http/outgoing-handler`` but its manifest grants no host."""

    def __init__(self) -> None:
        super().__init__("outbound HTTP refused", OUTBOUND_REFUSAL)


def _handle_export(engine: WasmEngine, component: Component, digest: str) -> ExportIndex:
    """The ``handle`` function of the component's ``wasi:http/incoming-handler@0.2.x`` export."""
    names = [
        name
        for name in component.type.exports(engine.engine)
        if name.startswith("wasi:http/incoming-handler@0.2.")
    ]
    if not names:
        raise AbiMismatchError(digest, ABI, f"no export {INCOMING_HANDLER}")
    interface = component.get_export_index(names[0])
    handle = component.get_export_index("handle", interface) if interface is not None else None
    if handle is None:
        raise AbiMismatchError(digest, ABI, f"{names[0]} exports no 'handle' function")
    return handle


def build_linker(engine: WasmEngine, component: Component, digest: str) -> Linker:
    """Our definitions of the proxy world's imports, and a trap for every other import."""
    linker = Linker(engine.engine)
    imports = list(component.type.imports(engine.engine))
    with linker.root() as root:
        definer = Definer(root, imports)
        define_io(definer)
        define_cli_clocks_random(definer)
        define_http(definer, TYPE_FUNCS)
        define_outgoing_handler(definer)
    try:
        linker.define_unknown_imports_as_traps(component)
    except wasmtime.WasmtimeError as exc:
        raise AbiMismatchError(digest, ABI, str(exc).strip().splitlines()[0]) from exc
    return linker


class HttpComponentHandler:
    """A component ready to serve requests; ``handle`` is synchronous and thread-safe."""

    abi = ABI
    calls_out = False

    def __init__(
        self,
        engine: WasmEngine,
        compiled: CompiledComponent,
        *,
        limits: Limits,
        env: Mapping[str, str] | None = None,
        name: str = "handler",
        outbound: OutboundGrant | None = None,
    ) -> None:
        engine.config.check_memory_limit(limits.memory_bytes)
        component, digest = compiled.component, compiled.digest
        self.name = name
        self.digest = digest
        self.limits = limits
        self._engine = engine
        self._component = component
        self._env = check_granted_env(env or {})
        self.outbound = outbound
        self._client = OutboundClient(outbound, name) if outbound is not None else None
        # A component that calls out has effects outside its instance: never run it twice.
        imports = component.type.imports(engine.engine)
        self.calls_out = outbound is not None and any(
            n.startswith(f"{OUTGOING_HANDLER}@0.2.") for n in imports
        )
        self._handle = _handle_export(engine, component, digest)
        component_bytes.install()
        self._linker = build_linker(engine, component, digest)

    def handle(self, request: WasmRequest, timeout_s: float | None = None) -> WasmResponse:
        """Run ``handle`` of the component on a fresh instance for ``request``.

        Raises ``WasmTrapError`` (and ``OutboundNotAllowedError``), ``DeadlineExceededError``,
        ``MemoryLimitError``, ``OutputTooLargeError`` or ``InvalidOutputError``.
        """
        engine = self._engine
        engine.check_open()
        timeout = self.limits.timeout_s if timeout_s is None else timeout_s
        store = wasmtime.Store(engine.engine)
        store.set_limits(memory_size=self.limits.memory_bytes)
        store.set_epoch_deadline(engine.deadline_ticks(timeout))
        client = self._client
        outbound = (client, OutboundRun.starting(timeout)) if client is not None else None
        state = HttpExchange(
            dict(self._env), time.monotonic() + timeout, self.limits.max_output_bytes, outbound
        )
        set_current(state)
        try:
            try:
                instance = self._linker.instantiate(store, self._component)
                func = instance.get_func(store, self._handle)
                if func is None:
                    raise WasmTrapError("host error", "the handle export is not a function")
                func(store, *new_request_resources(state, request))
                func.post_return(store)
            except Exception as exc:  # WasmtimeError, or a host function's own exception
                failure = self._failure(state, exc)
                if failure is not None:
                    raise failure from exc
        finally:
            set_current(None)
            store.close()
        return self._response(state)

    def _failure(self, state: HttpExchange, exc: Exception) -> HandlerError | None:  # noqa: PLR0911
        """The error ``exc`` stands for; None when the guest exited successfully after answering."""
        cause = state.failure or exc
        if isinstance(cause, GuestExitError) and cause.ok and state.outparam.set:
            return None
        if isinstance(cause, HandlerError):
            return cause
        if isinstance(cause, HostRefusalError):
            if str(cause) == OUTBOUND_REFUSAL:
                return OutboundNotAllowedError()
            return WasmTrapError("host refusal", str(cause))
        if isinstance(cause, TimeoutError):
            return DeadlineExceededError(self.limits.timeout_s)
        if isinstance(cause, GuestExitError):
            return HandlerExitError(0 if cause.ok else 1)
        message = str(cause)
        if "wasm trap: interrupt" in message:
            return DeadlineExceededError(self.limits.timeout_s)
        if "maximum concurrent limit" in message:
            return InstanceLimitError(_reason(message))
        if (
            "exceeds memory limits" in message
            or "memory minimum size" in message
            or self._out_of_memory(state)
        ):
            return MemoryLimitError(self.limits.memory_bytes, _reason(message))
        return WasmTrapError(_trap_kind(message), _reason(message))

    def _out_of_memory(self, state: HttpExchange) -> bool:
        return any(mark in state.log for mark in _OUT_OF_MEMORY_MARKS)

    def _response(self, state: HttpExchange) -> WasmResponse:
        outparam = state.outparam
        if not outparam.set:
            raise InvalidOutputError("the component returned without setting a response")
        if outparam.error is not None or outparam.response is None:
            raise InvalidOutputError(f"the component answered with error {outparam.error}")
        answer = outparam.response
        body = b"".join(answer.body.chunks) if answer.body is not None else b""
        if answer.status >= 500 and self._out_of_memory(state):
            raise MemoryLimitError(self.limits.memory_bytes, "the component ran out of memory")
        problem = status_problem(answer.status)
        if problem is not None:
            raise InvalidOutputError(problem)
        return WasmResponse(
            status=answer.status, headers=response_headers(answer.headers.entries, len(body)), body=body
        )


def response_headers(entries: list[tuple[str, bytes]], body_size: int) -> tuple[tuple[str, str], ...]:
    """The response's ``fields`` as ``WasmResponse`` headers: names in lower case, order and
    repeats kept, ``content-length`` checked against the body and dropped (the server frames
    the body); ``InvalidOutputError`` for a value that is not UTF-8 or a field the server owns."""
    if len(entries) > MAX_RESPONSE_HEADERS:
        raise InvalidOutputError(f"{len(entries)} header fields, more than {MAX_RESPONSE_HEADERS}")
    headers = []
    for raw_name, raw_value in entries:
        name = raw_name.lower()
        try:
            value = raw_value.decode()
        except UnicodeDecodeError:
            raise InvalidOutputError(f"header {name!r} is not UTF-8") from None
        if name == "content-length":
            # The server frames the body; a length that disagrees is the guest's bug.
            if value.strip() != str(body_size):
                raise InvalidOutputError(f"content-length {value!r} but the body has {body_size} bytes")
            continue
        problem = field_problem(name, value)
        if problem is not None or name in HOP_BY_HOP:
            raise InvalidOutputError(problem or f"hop-by-hop header {name!r}")
        headers.append((name, value))
    return tuple(headers)


def _reason(message: str) -> str:
    _, caused, cause = message.partition("Caused by:")
    lines = [line.strip() for line in (cause if caused else message).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


# wasmtime's trap messages, shortened to the kinds the other ABIs report (``_raw.TRAP_KINDS``).
_TRAP_KINDS = (
    ("unreachable", "unreachable"),
    ("call stack exhausted", "stack overflow"),
    ("out of bounds memory access", "out of bounds memory access"),
    ("undefined element", "undefined element"),
    ("uninitialized element", "uninitialized element"),
    ("indirect call type mismatch", "indirect call type mismatch"),
    ("integer overflow", "integer overflow"),
    ("integer divide by zero", "integer divide by zero"),
    ("invalid conversion to integer", "invalid conversion to integer"),
)


def _trap_kind(message: str) -> str:
    for raw in message.splitlines():
        line = raw.strip()
        if line.startswith("wasm trap:"):
            text = line.removeprefix("wasm trap:").strip()
            return next((kind for mark, kind in _TRAP_KINDS if mark in text), text)
    return "host error"


def run_http_component(
    engine: WasmEngine, compiled: CompiledComponent, request: WasmRequest, limits: Limits | None = None
) -> WasmResponse:
    """One request through a component (a handler built for it; servers keep the handler)."""
    return HttpComponentHandler(engine, compiled, limits=limits or Limits()).handle(request)
