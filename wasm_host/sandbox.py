"""What both ABIs share per request: a fresh store with limits, instantiation, failure triage.

Every request gets its own ``Store`` and instance (from a pre-linked ``InstancePre``), so no
state survives a request and a trap poisons nothing. Everything here goes through the raw
C-API prototypes in ``_raw``; pointers are plain integers and each store is deleted in a
``finally``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from typing import cast

import wasmtime

from wasm_host import _raw
from wasm_host.cache import CompiledModule
from wasm_host.cgi import is_reserved_env
from wasm_host.config import Limits
from wasm_host.edge_http import EdgeHttpHost
from wasm_host.engine import WasmEngine
from wasm_host.errors import (
    AbiMismatchError,
    DeadlineExceededError,
    HandlerError,
    HandlerExitError,
    InstanceLimitError,
    MemoryLimitError,
    WasmTrapError,
)
from wasm_host.outbound import EDGE_HTTP_MODULE, SIGNATURES
from wasm_host.wasi_cgi import WASI_MODULE, NativeWasi

PAGE = 64 * 1024


def check_granted_env(env: Mapping[str, str]) -> dict[str, str]:
    """The granted environment, refusing names the host owns or values C strings cannot hold."""
    for name, value in env.items():
        if not name or "=" in name or "\x00" in name or "\x00" in value:
            raise ValueError(f"environment variable {name!r} cannot be passed to a WASI program")
        if is_reserved_env(name):
            raise ValueError(f"environment variable {name!r} is set by the host for every request")
    return dict(env)


def check_imports(compiled: CompiledModule, abi: str, *, granted: bool) -> list[str]:
    """The ``edge_http`` functions ``compiled`` imports; ``AbiMismatchError`` for an import
    outside WASI and ``edge_http``, or for ``edge_http`` when the manifest grants no host."""
    edge_http: list[str] = []
    for imp in compiled.module.imports:
        if imp.module == WASI_MODULE:
            continue
        if imp.module != EDGE_HTTP_MODULE or imp.name not in SIGNATURES:
            raise AbiMismatchError(compiled.digest, abi, f"unknown import {imp.module}::{imp.name}")
        if not granted:
            raise AbiMismatchError(
                compiled.digest,
                abi,
                f"imports {imp.module}::{imp.name} but its manifest grants no allowed_outbound_hosts",
            )
        edge_http.append(imp.name)
    return edge_http


def _reason(message: str) -> str:
    """The line of a wasmtime error that says what went wrong: the cause when it has one
    ("error while executing at wasm backtrace: ... Caused by: <reason>"), else the first."""
    _, caused, cause = message.partition("Caused by:")
    lines = (cause if caused else message).strip().splitlines()
    return lines[0].strip() if lines else ""


class Sandbox:
    """One module prepared for many isolated runs under fixed limits."""

    def __init__(
        self,
        engine: WasmEngine,
        compiled: CompiledModule,
        limits: Limits,
        abi: str,
        *,
        cgi_wasi: bool = False,
        outbound: EdgeHttpHost | None = None,
    ) -> None:
        engine.config.check_memory_limit(limits.memory_bytes)
        self.engine = engine
        self.compiled = compiled
        self.limits = limits
        self.digest = compiled.digest
        self.ticks = engine.deadline_ticks(limits.timeout_s)
        edge_http = check_imports(compiled, abi, granted=outbound is not None)
        linker = wasmtime.Linker(engine.engine)
        # Set when the module calls out: it runs on a worker thread, with begin/end per run.
        self.outbound = outbound if edge_http else None
        if outbound is not None and edge_http:
            outbound.define(linker, edge_http)
        native = engine.native_wasi if cgi_wasi else None
        # Set: the guest's WASI calls run in wasi_cgi.c and the store's data is one of its
        # states; None: a wasmtime WasiCtx per store (new_store's wasi_config).
        self.native_wasi: NativeWasi | None = None
        if native is not None and native.covers(compiled.module):
            native.define(linker)
            self.native_wasi = native
        else:
            linker.define_wasi()
        try:
            self.pre = linker.instantiate_pre(compiled.module)
        except wasmtime.WasmtimeError as exc:
            raise AbiMismatchError(compiled.digest, abi, str(exc).splitlines()[0]) from exc
        self._pre_ptr = ctypes.cast(self.pre.ptr(), ctypes.c_void_p).value
        self._engine_ptr = ctypes.cast(engine.engine.ptr(), ctypes.c_void_p).value
        self.uses_wasi = any(imp.module == WASI_MODULE for imp in compiled.module.imports)
        self._linker = linker  # keeps the edge_http callbacks' definitions alive

    def ticks_for(self, timeout_s: float | None) -> int:
        """Epoch ticks of a run given ``timeout_s`` (None: the module's own deadline)."""
        return self.ticks if timeout_s is None else self.engine.deadline_ticks(timeout_s)

    def new_store(self, wasi_config: int | None, data: int | None = None, ticks: int = 0) -> tuple[int, int]:
        """A fresh store with the memory cap and deadline set; it takes ``wasi_config``.

        ``data`` becomes the store's data: the native WASI state, when ``native_wasi``.
        ``ticks`` (``ticks_for``) replaces the module's deadline when positive: the
        executor's short slice for a run on the event loop, or what is left of the deadline
        for the run that finishes such a request on the pool.
        """
        store = _raw.store_new(self._engine_ptr, data, None)
        ctx = _raw.store_context(store)
        _raw.store_limiter(store, self.limits.memory_bytes, -1, -1, -1, -1)
        _raw.context_set_epoch_deadline(ctx, ticks if ticks > 0 else self.ticks)
        if wasi_config is not None:
            error = _raw.context_set_wasi(ctx, wasi_config)
            if error:
                _raw.store_delete(store)
                raise WasmTrapError("host error", _raw.take_error(error)[1])
        return store, ctx

    def instantiate(self, ctx: int) -> _raw.Instance:
        """Instantiate the module in the store behind ``ctx``; failures are classified."""
        instance = _raw.Instance()
        trap = ctypes.c_void_p()
        error = _raw.instance_pre_instantiate(self._pre_ptr, ctx, ctypes.byref(instance), ctypes.byref(trap))
        if error or trap:
            raise self.failure(ctx, None, error, trap.value)
        return instance

    def export(self, ctx: int, instance: _raw.Instance, name: bytes, kind: int) -> _raw.Extern:
        """Export ``name`` of ``kind`` (checked once at load time, so present)."""
        item = _raw.Extern()
        if not _raw.instance_export_get(ctx, ctypes.byref(instance), name, len(name), ctypes.byref(item)):
            raise WasmTrapError("host error", f"export {name.decode()} is missing")
        if cast("int", item.kind) != kind:
            raise WasmTrapError("host error", f"export {name.decode()} has the wrong kind")
        return item

    def memory_in_use(self, ctx: int, instance: _raw.Instance | None) -> int | None:
        """Bytes of linear memory the instance has, when it exports its memory."""
        if instance is None:
            return None
        item = _raw.Extern()
        if not _raw.instance_export_get(ctx, ctypes.byref(instance), b"memory", 6, ctypes.byref(item)):
            return None
        if cast("int", item.kind) != _raw.EXTERN_MEMORY:
            return None
        # byref, not an address: it keeps ``item`` alive through the call (see reactor._export).
        return int(_raw.memory_data_size(ctx, ctypes.byref(item, _raw.EXTERN_OF_OFFSET)))

    def _near_cap(self, in_use: int | None) -> bool:
        # wasmtime's store limiter makes memory.grow return -1 rather than trap, so a guest
        # that hits the cap fails in its own way (abort, exit 1, unreachable). We call such
        # a failure a memory-limit failure when the memory was within 1/16 of its cap.
        cap = self.limits.memory_bytes
        return in_use is not None and in_use + max(PAGE, cap // 16) > cap

    def exit_failure(self, ctx: int, instance: _raw.Instance | None, status: int) -> HandlerError:
        """The failure a non-zero exit status means (a memory-limit one near the cap)."""
        if self._near_cap(self.memory_in_use(ctx, instance)):
            return MemoryLimitError(self.limits.memory_bytes, f"guest exited with status {status}")
        return HandlerExitError(status)

    def failure(  # noqa: PLR0911 - one return per failure kind reads best
        self, ctx: int, instance: _raw.Instance | None, error: int | None, trap: int | None
    ) -> HandlerError:
        """Turn a wasmtime error or trap into the host's exception (consuming both)."""
        if trap:
            kind, message = _raw.take_trap(trap)
            if error:
                _raw.take_error(error)
            if kind in _raw.INTERRUPT_KINDS:
                return DeadlineExceededError(self.limits.timeout_s)
            if self._near_cap(self.memory_in_use(ctx, instance)):
                return MemoryLimitError(self.limits.memory_bytes, f"guest trapped: {kind}")
            return WasmTrapError(kind, message.splitlines()[0] if message else "")
        assert error
        exit_status, message = _raw.take_error(error)
        if exit_status is not None:
            return self.exit_failure(ctx, instance, exit_status)
        first = _reason(message)
        if "exceeds memory limits" in message or "memory minimum size" in message:
            return MemoryLimitError(self.limits.memory_bytes, first)
        if "maximum concurrent limit" in message:
            return InstanceLimitError(first)
        return WasmTrapError("host error", first)
