"""The WAGI ABI: run a WASI preview-1 command per request, CGI/1.1 in, CGI/1.1 out.

Request line and headers become environment variables (``cgi.cgi_environ``), the body is
stdin and stdout is parsed by ``cgi.parse_cgi_response``. Only the manifest's granted
variables join the CGI ones: no preopened directories, no inherited stdio, no sockets
(preview-1 has none to grant).

Two WASI implementations serve a command, with the same behaviour. A module whose imports
wasi_cgi.c implements (every CGI program we have seen: C with wasi-libc, Rust std) runs on
it: the request's state is copied into a pooled native ``CgiState``, the store's data, and
stdout collects in its buffer (~15 us less per request than wasmtime's WASI, docs/abi.md).
Any other module gets a wasmtime ``WasiCtx``: stdin from bytes, stdout into a memfd.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

from wasmtime import FuncType

from wasm_host import _raw
from wasm_host.cache import CompiledModule
from wasm_host.cgi import cgi_environ_block, cgi_environ_bytes, parse_cgi_response
from wasm_host.config import Limits
from wasm_host.edge_http import EdgeHttpHost
from wasm_host.engine import WasmEngine
from wasm_host.errors import (
    AbiMismatchError,
    HandlerError,
    HandlerExitError,
    OutputTooLargeError,
    WasmTrapError,
)
from wasm_host.outbound import OutboundGrant
from wasm_host.sandbox import Sandbox, check_granted_env
from wasm_host.values import WasmRequest, WasmResponse
from wasm_host.wasi_cgi import NativeWasi

_START = b"_start"


def _run_start(sandbox: Sandbox, ctx: int, instance: _raw.Instance) -> tuple[int | None, int | None]:
    """Call the command's ``_start``: the error and trap wasmtime returned (None when fine)."""
    start = sandbox.export(ctx, instance, _START, _raw.EXTERN_FUNC)
    trap = ctypes.c_void_p()
    # byref, not an address: it keeps ``start`` alive through the call (this module is
    # compiled by tools.accel; see reactor._export).
    error = _raw.func_call_unchecked(
        ctx, ctypes.byref(start, _raw.EXTERN_OF_OFFSET), None, 0, ctypes.byref(trap)
    )
    return error, trap.value


class WagiHandler:
    """A WAGI module ready to serve requests; ``handle`` is synchronous and thread-safe."""

    abi = "wagi"

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
        start = {exp.name: exp.type for exp in compiled.module.exports}.get("_start")
        # The per-request call skips type checks, so the signature is checked here, once.
        if not isinstance(start, FuncType) or start.params or start.results:
            raise AbiMismatchError(
                compiled.digest, self.abi, "a WAGI module is a command exporting _start: [] -> []"
            )
        self.name = name
        self.digest = compiled.digest
        self.limits = limits
        host = EdgeHttpHost(outbound, name) if outbound is not None else None
        self._sandbox = Sandbox(engine, compiled, limits, self.abi, cgi_wasi=True, outbound=host)
        # A module that calls out has effects outside its instance: never run it twice.
        self.calls_out = self._sandbox.outbound is not None
        self._engine = engine
        self._granted = tuple((k.encode(), v.encode()) for k, v in check_granted_env(env or {}).items())
        self._pool = engine.stdout_pool
        self._argv = (ctypes.c_char_p * 1)(name.encode())
        self._args_block = name.encode() + b"\0"

    @property
    def native_wasi(self) -> bool:
        """True when this module's WASI calls run in wasi_cgi.c, not wasmtime's WASI."""
        return self._sandbox.native_wasi is not None

    def _wasi_config(self, request: WasmRequest, stdout_path: bytes) -> int:
        config = _raw.wasi_config_new()
        names, values = cgi_environ_bytes(request, self._granted)
        ok = _raw.wasi_config_set_argv(config, 1, self._argv)
        ok = ok and _raw.set_env(config, names, values)
        ok = ok and _raw.wasi_config_set_stdout_file(config, stdout_path)
        if not ok:
            _raw.wasi_config_delete(config)
            raise WasmTrapError("host error", "cannot configure the WASI context (stdout memfd or env)")
        if request.body:
            vec = _raw.ByteVec()
            _raw.wasm_byte_vec_new(ctypes.byref(vec), len(request.body), request.body)
            _raw.wasi_config_set_stdin_bytes(config, ctypes.byref(vec))  # takes ownership
        return int(config)

    def handle(self, request: WasmRequest, timeout_s: float | None = None) -> WasmResponse:
        """Run the module once for ``request`` and parse its CGI response; ``timeout_s``
        replaces the module's deadline for this run (see ``Handler.handle``).

        Raises a ``HandlerError`` subclass: ``WasmTrapError`` (``HandlerExitError`` for a
        non-zero exit), ``DeadlineExceededError``, ``MemoryLimitError``,
        ``OutputTooLargeError`` or ``InvalidCgiOutputError``.
        """
        self._engine.check_open()
        native = self._sandbox.native_wasi
        ticks = 0 if timeout_s is None else self._sandbox.ticks_for(timeout_s)
        if native is not None:
            return parse_cgi_response(self._run_native(native, request, ticks))
        return parse_cgi_response(
            self._run_wasmtime_wasi(request, ticks, self.limits.timeout_s if timeout_s is None else timeout_s)
        )

    def _run_native(self, native: NativeWasi, request: WasmRequest, ticks: int) -> bytes:
        """stdout of one run with wasi_cgi.c as the module's WASI."""
        sandbox = self._sandbox
        env, env_count = cgi_environ_block(request, self._granted)
        args = self._args_block
        body = request.body
        state = native.acquire()
        try:
            if native.reset(
                state.address,
                env,
                len(env),
                env_count,
                args,
                len(args),
                1,
                body,
                len(body),
                self.limits.max_output_bytes,
            ):
                raise WasmTrapError("host error", "cannot allocate the request's WASI state")
            store, ctx = sandbox.new_store(None, state.address, ticks)
            try:
                instance: _raw.Instance | None = None
                try:
                    instance = sandbox.instantiate(ctx)
                    error, trap = _run_start(sandbox, ctx, instance)
                except HandlerError:
                    # A start section runs the guest inside instantiate, which raised for the
                    # trap wasi_cgi.c stops a guest with: the outcome says why, as for _start.
                    if not (state.outcome.overflowed or state.outcome.exited):
                        raise
                    error, trap = None, None
                outcome = state.outcome
                if error or trap or outcome.overflowed or outcome.exited:
                    if outcome.overflowed or outcome.exited:
                        # The trap wasi_cgi.c raised to stop the guest; the outcome says why.
                        _raw.discard(error, trap)
                        if outcome.overflowed:
                            raise OutputTooLargeError(
                                self.limits.max_output_bytes, int(outcome.out_attempted)
                            )
                        if outcome.exit_code != 0:
                            raise sandbox.exit_failure(ctx, instance, int(outcome.exit_code))
                    else:
                        raise sandbox.failure(ctx, instance, error, trap)
            finally:
                _raw.store_delete(store)
            return state.output()
        finally:
            native.release(state)

    def _run_wasmtime_wasi(self, request: WasmRequest, ticks: int, timeout_s: float) -> bytes:
        """stdout of one run with a wasmtime WasiCtx as the module's WASI (always, for a
        module that imports edge_http: wasi_cgi.c links WASI only)."""
        sandbox = self._sandbox
        outbound = sandbox.outbound
        fd = self._pool.acquire()
        try:
            store, ctx = sandbox.new_store(self._wasi_config(request, b"/proc/self/fd/%d" % fd), None, ticks)
            if outbound is not None:
                outbound.begin(ctx, timeout_s)
            try:
                try:
                    instance = sandbox.instantiate(ctx)
                    error, trap = _run_start(sandbox, ctx, instance)
                except HandlerExitError as exc:
                    if exc.exit_code != 0:
                        raise
                    error, trap = None, None  # proc_exit(0) in a start section: a successful end
                if error or trap:
                    status = ctypes.c_int(0)
                    if not trap and _raw.error_exit_status(error, ctypes.byref(status)) and status.value == 0:
                        _raw.error_delete(error)  # proc_exit(0) is a normal, successful end
                    else:
                        raise sandbox.failure(ctx, instance, error, trap)
            finally:
                if outbound is not None:
                    outbound.end(ctx)
                _raw.store_delete(store)
            size = os.fstat(fd).st_size
            if size > self.limits.max_output_bytes:
                raise OutputTooLargeError(self.limits.max_output_bytes, size)
            output = os.pread(fd, size, 0)
        except BaseException:
            # No "size = None before try, release in finally": compiled by tools.accel, a
            # variable narrowed to int in the try block is read back as int in the finally.
            self._pool.release(fd)
            raise
        self._pool.release(fd, size)
        return output
