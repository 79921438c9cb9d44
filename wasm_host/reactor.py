"""The reactor ABI: a module exporting ``memory``, ``edge_alloc`` and ``edge_handle``.

Per request the host instantiates the module afresh, calls ``_initialize`` when exported
(the WASI reactor convention), asks ``edge_alloc(len)`` for a buffer, writes the encoded
request (``codec.encode_request``) there, calls ``edge_handle(ptr, len)`` and reads the
response from the packed ``ptr << 32 | len`` it returns. Every pointer the guest hands back
is checked against the size of its memory before the host touches it. A fresh instance
per request is the measured choice (docs/abi.md): it costs ~10 us over a reused one and
buys full isolation between requests and recovery from traps for free.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from typing import Any

from wasmtime import FuncType, MemoryType, ValType

from wasm_host import _raw
from wasm_host.cache import CompiledModule
from wasm_host.codec import decode_response, encode_request
from wasm_host.config import Limits
from wasm_host.edge_http import EdgeHttpHost
from wasm_host.engine import WasmEngine
from wasm_host.errors import AbiMismatchError, InvalidReactorOutputError, OutputTooLargeError, WasmTrapError
from wasm_host.outbound import OutboundGrant
from wasm_host.sandbox import Sandbox, check_granted_env
from wasm_host.values import WasmRequest, WasmResponse

_I32 = ValType.i32()
_I64 = ValType.i64()
_REQUIRED = {
    "edge_alloc": ([_I32], [_I32]),
    "edge_handle": ([_I32, _I32], [_I64]),
}
_ALLOC = b"edge_alloc"
_HANDLE = b"edge_handle"
_INITIALIZE = b"_initialize"
_MEMORY = b"memory"
_U32 = 0xFFFFFFFF
# Bound once: module attribute lookups add up on a ~30 us path.
_export_get = _raw.instance_export_get
_call_unchecked = _raw.func_call_unchecked
_memory_data = _raw.memory_data
_memory_data_size = _raw.memory_data_size
_store_delete = _raw.store_delete


_TRAP_OFFSET: int = _raw.REACTOR_TRAP_OFFSET


def _check_exports(compiled: CompiledModule) -> bool:
    """Verify the reactor exports' types once, so per-request calls can skip type checks."""
    exports = {exp.name: exp.type for exp in compiled.module.exports}

    def mismatch(reason: str) -> AbiMismatchError:
        return AbiMismatchError(compiled.digest, "reactor", reason)

    if not isinstance(exports.get("memory"), MemoryType):
        raise mismatch("no exported memory named 'memory'")
    for name, (params, results) in _REQUIRED.items():
        ty = exports.get(name)
        if not isinstance(ty, FuncType):
            raise mismatch(f"no exported function {name!r}")
        if [str(p) for p in ty.params] != [str(p) for p in params] or [str(r) for r in ty.results] != [
            str(r) for r in results
        ]:
            raise mismatch(f"{name} has type {ty.params} -> {ty.results}, expected {params} -> {results}")
    init = exports.get("_initialize")
    if init is not None and (not isinstance(init, FuncType) or init.params or init.results):
        raise mismatch("_initialize must take and return nothing")
    return init is not None


class ReactorHandler:
    """A reactor module ready to serve requests; ``handle`` is synchronous and thread-safe."""

    abi = "reactor"

    def __init__(
        self,
        engine: WasmEngine,
        compiled: CompiledModule,
        *,
        limits: Limits,
        env: Mapping[str, str] | None = None,
        name: str = "handler",
        outbound: OutboundGrant | None = None,
    ) -> None:
        self._has_initialize = _check_exports(compiled)
        self.name = name
        self.digest = compiled.digest
        self.limits = limits
        self._engine = engine
        host = EdgeHttpHost(outbound, name) if outbound is not None else None
        self._sandbox = Sandbox(engine, compiled, limits, self.abi, outbound=host)
        # A module that calls out has effects outside its instance: never run it twice.
        self.calls_out = self._sandbox.outbound is not None
        granted = check_granted_env(env or {})
        # The granted environment is the same for every request: its C arrays are built
        # once and live as long as the handler, so no pointer into them can dangle (this
        # module is compiled by tools.accel, and mypyc frees a local once it is dead).
        self._env_count = len(granted)
        self._env_names = (ctypes.c_char_p * len(granted))(*[k.encode() for k in granted])
        self._env_values = (ctypes.c_char_p * len(granted))(*[v.encode() for v in granted.values()])
        self._argv = (ctypes.c_char_p * 1)(name.encode())

    def _wasi_config(self) -> int | None:
        # Only modules that import WASI get a context (and only the granted environment):
        # a freestanding reactor skips the cost entirely.
        if not self._sandbox.uses_wasi:
            return None
        config = _raw.wasi_config_new()
        _raw.wasi_config_set_argv(config, 1, self._argv)
        _raw.wasi_config_set_env(config, self._env_count, self._env_names, self._env_values)
        return int(config)

    def handle(self, request: WasmRequest, timeout_s: float | None = None) -> WasmResponse:
        """Run ``edge_handle`` on a fresh instance for ``request``; ``timeout_s`` replaces the
        module's deadline for this run (see ``Handler.handle``).

        Raises ``WasmTrapError``, ``DeadlineExceededError``, ``MemoryLimitError``,
        ``OutputTooLargeError`` or ``InvalidReactorOutputError``.
        """
        self._engine.check_open()
        payload = encode_request(request)
        sandbox = self._sandbox
        store, ctx = sandbox.new_store(
            self._wasi_config(), None, 0 if timeout_s is None else sandbox.ticks_for(timeout_s)
        )
        outbound = sandbox.outbound
        if outbound is not None:
            outbound.begin(ctx, self.limits.timeout_s if timeout_s is None else timeout_s)
        try:
            output = self.run_in(ctx, sandbox.instantiate(ctx), payload)
        finally:
            if outbound is not None:
                outbound.end(ctx)
            _store_delete(store)
        return decode_response(output)

    def run_in(self, ctx: int, instance: _raw.Instance, payload: bytes) -> bytes:
        """One request on an existing instance: the raw response bytes ``edge_handle`` returned.

        ``handle`` always passes a fresh instance; the benchmark passes a reused one to
        measure what reuse would save.
        """
        size = len(payload)
        # One allocation for everything the calls fill in: export handles, params/results.
        slots = _raw.ReactorSlots()
        instance_ref = ctypes.byref(instance)
        if self._has_initialize:
            self._call(ctx, instance, self._export(ctx, instance_ref, _INITIALIZE, slots.init), slots, 0)
        slots.args[0].i32 = size
        self._call(ctx, instance, self._export(ctx, instance_ref, _ALLOC, slots.alloc), slots, 1)
        ptr = slots.args[0].i32 & _U32
        memory = self._export(ctx, instance_ref, _MEMORY, slots.memory)
        if ptr + size > _memory_data_size(ctx, memory):
            raise InvalidReactorOutputError(f"edge_alloc returned {ptr:#x}, outside memory")
        ctypes.memmove(_memory_data(ctx, memory) + ptr, payload, size)
        slots.args[0].i32 = ptr
        slots.args[1].i32 = size
        self._call(ctx, instance, self._export(ctx, instance_ref, _HANDLE, slots.handle), slots, 2)
        packed = slots.args[0].i64
        out_ptr, out_len = (packed >> 32) & _U32, packed & _U32
        if out_len > self.limits.max_output_bytes:
            raise OutputTooLargeError(self.limits.max_output_bytes, out_len)
        # Memory may have grown (and moved) during the call: fetch base and size anew.
        if out_ptr + out_len > _memory_data_size(ctx, memory):
            raise InvalidReactorOutputError(f"response {out_ptr:#x}+{out_len} lies outside memory")
        return ctypes.string_at(_memory_data(ctx, memory) + out_ptr, out_len) if out_len else b""

    @staticmethod
    def _export(ctx: int, instance_ref: Any, name: bytes, slot: _raw.Extern) -> object:
        """Look ``name`` up into ``slot``; a pointer to its func/memory handle.

        Kinds and types were checked at load time against the module, which every instance
        shares, so only presence can differ (and cannot, short of a wasmtime bug). The
        pointer is a ``byref`` that keeps ``slot`` (and the slots it lies in) alive for as
        long as it is used: a bare address would not, since this module is compiled by
        tools.accel and mypyc frees an object as soon as nothing uses it any more.
        """
        if not _export_get(ctx, instance_ref, name, len(name), ctypes.byref(slot)):
            raise WasmTrapError("host error", f"export {name.decode()} is missing")
        return ctypes.byref(slot, _raw.EXTERN_OF_OFFSET)

    def _call(
        self, ctx: int, instance: _raw.Instance, func: object, slots: _raw.ReactorSlots, count: int
    ) -> None:
        """Call the function handle at ``func`` with ``slots.args`` through the unchecked path.

        Unchecked is safe because ``_check_exports`` verified every signature at load time.
        """
        error = _call_unchecked(ctx, func, slots.args, count, ctypes.byref(slots, _TRAP_OFFSET))
        trap = slots.trap
        if error or trap:
            raise self._sandbox.failure(ctx, instance, error, trap)
