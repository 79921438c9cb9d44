"""The ``Handler`` protocol the three ABIs implement, and the factory that picks one by ABI name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

from wasm_host.cache import CompiledModule
from wasm_host.component_cache import CompiledComponent
from wasm_host.component_handler import HttpComponentHandler
from wasm_host.config import Limits
from wasm_host.engine import WasmEngine
from wasm_host.errors import AbiMismatchError
from wasm_host.outbound import OutboundGrant
from wasm_host.reactor import ReactorHandler
from wasm_host.values import WasmRequest, WasmResponse
from wasm_host.wagi import WagiHandler

Abi = Literal["wagi", "reactor", "wasi-http"]
ABIS: tuple[Abi, ...] = ("wagi", "reactor", "wasi-http")


class Handler(Protocol):
    """A loaded module that turns one request into one response, synchronously.

    ``handle`` is thread-safe (each call has its own store and instance) and raises only
    ``wasm_host.errors.HandlerError`` subclasses for guest failures. ``timeout_s``, when
    given, replaces ``limits.timeout_s`` as this run's deadline (the executor's short slice
    for a run on the event loop, or what is left of the deadline when a request cut from
    that slice is run again on the pool); the error still names the module's own deadline.
    A run has no effect outside its instance, so running a request again is safe, unless
    ``calls_out``: the module imports ``edge_http`` (its manifest grants outbound hosts), so
    a run reaches other servers and blocks its thread while it waits for them; a server
    runs such a handler once, on a worker thread (``wasm_host.executor``).
    """

    @property
    def abi(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def limits(self) -> Limits: ...
    @property
    def calls_out(self) -> bool: ...

    def handle(self, request: WasmRequest, timeout_s: float | None = None) -> WasmResponse: ...


def create_handler(
    engine: WasmEngine,
    compiled: CompiledModule | CompiledComponent,
    *,
    abi: Abi = "wagi",
    limits: Limits | None = None,
    env: Mapping[str, str] | None = None,
    name: str = "handler",
    outbound: OutboundGrant | None = None,
) -> Handler:
    """A handler for ``compiled`` under ``abi``; ``AbiMismatchError`` if the module does not fit,
    and for a core module under ``wasi-http`` or a component under the other two.

    ``env`` is the manifest's grant: the only variables besides the CGI ones a WAGI module
    sees (a reactor module sees them only if it imports WASI). Names the host sets itself
    (CGI meta-variables, ``HTTP_*``) are refused with ``ValueError``. ``outbound`` is the
    manifest's ``allowed_outbound_hosts`` grant: without one, a module importing
    ``edge_http`` is refused (``AbiMismatchError``).
    """
    limits = limits or Limits()
    if abi not in ABIS:
        raise ValueError(f"unknown ABI {abi!r}; expected one of {', '.join(ABIS)}")
    if abi == "wasi-http":
        if not isinstance(compiled, CompiledComponent):
            raise AbiMismatchError(
                compiled.digest, abi, "a core module, not a component (wagi or reactor runs it)"
            )
        return HttpComponentHandler(engine, compiled, limits=limits, env=env, name=name, outbound=outbound)
    if isinstance(compiled, CompiledComponent):
        raise AbiMismatchError(compiled.digest, abi, "a component: declare it with abi = 'wasi-http'")
    if abi == "wagi":
        return WagiHandler(engine, compiled, limits=limits, env=env, name=name, outbound=outbound)
    return ReactorHandler(engine, compiled, limits=limits, env=env, name=name, outbound=outbound)
