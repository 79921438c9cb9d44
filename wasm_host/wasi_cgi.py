"""Native WASI for CGI commands: the library built from ``wasi_cgi.c`` and the states it uses.

A WAGI module whose WASI imports are all in ``SIGNATURES`` is linked against these native
functions instead of wasmtime's WASI (docs/abi.md, "WASI"): a request then configures one
reusable ``CgiState`` (environment, arguments, stdin, output limit) and makes it the
store's data, instead of building a wasmtime ``WasiCtx``. Modules importing anything else
keep wasmtime's WASI, which is also what runs when the library is not built (no C
compiler, ``EDGECDN_NO_EXTENSIONS=1``) or when ``EDGECDN_WASI=wasmtime`` asks for it (an
escape hatch, and the benchmarks' comparison).

Interpreted on purpose (not in tools.accel's list): it holds ctypes structures and runs
once per module or per state, not per request.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import FuncType, ValType
from wasmtime import _ffi as ffi

from wasm_host import _raw

logger = logging.getLogger(__name__)

WASI_MODULE = "wasi_snapshot_preview1"
LIBRARY = Path(__file__).with_name("_wasi_cgi.so")
CHOICE_ENV = "EDGECDN_WASI"
CHOICES = ("native", "wasmtime")

_I32 = ValType.i32()
_I64 = ValType.i64()
# Every preview-1 function wasi_cgi.c implements, with its type (witx).
SIGNATURES: dict[str, tuple[list[ValType], list[ValType]]] = {
    "args_get": ([_I32, _I32], [_I32]),
    "args_sizes_get": ([_I32, _I32], [_I32]),
    "environ_get": ([_I32, _I32], [_I32]),
    "environ_sizes_get": ([_I32, _I32], [_I32]),
    "fd_write": ([_I32, _I32, _I32, _I32], [_I32]),
    "fd_read": ([_I32, _I32, _I32, _I32], [_I32]),
    "fd_close": ([_I32], [_I32]),
    "fd_seek": ([_I32, _I64, _I32, _I32], [_I32]),
    "fd_fdstat_get": ([_I32, _I32], [_I32]),
    "fd_prestat_get": ([_I32, _I32], [_I32]),
    "fd_prestat_dir_name": ([_I32, _I32, _I32], [_I32]),
    "proc_exit": ([_I32], []),
    "clock_time_get": ([_I32, _I64, _I32], [_I32]),
    "clock_res_get": ([_I32, _I32], [_I32]),
    "random_get": ([_I32, _I32], [_I32]),
    "sched_yield": ([], [_I32]),
}

_P = ctypes.c_void_p
_U64 = ctypes.c_uint64
_U32 = ctypes.c_uint32


class _WasmtimeApi(ctypes.Structure):
    """The wasmtime entry points the library calls (wasi_cgi.c's wasmtime_api_t)."""

    _fields_ = (
        ("caller_export_get", _P),
        ("caller_context", _P),
        ("context_get_data", _P),
        ("memory_data", _P),
        ("memory_data_size", _P),
        ("trap_new", _P),
    )


class CgiOutcome(ctypes.Structure):
    """The head of a state, read after a run (wasi_cgi.c's outcome_t)."""

    _fields_ = (
        ("out", _P),
        ("out_len", _U64),
        ("out_attempted", _U64),
        ("exit_code", ctypes.c_int32),
        ("exited", ctypes.c_uint8),
        ("overflowed", ctypes.c_uint8),
    )


class CgiState:
    """One request's WASI state in native memory; reused, one request at a time."""

    __slots__ = ("address", "outcome")

    def __init__(self, address: int) -> None:
        self.address = address
        self.outcome: Any = CgiOutcome.from_address(address)

    def output(self) -> bytes:
        """What the guest wrote to stdout."""
        size = int(self.outcome.out_len)
        return ctypes.string_at(self.outcome.out, size) if size else b""


class NativeWasi:
    """The loaded library: links modules to it and pools the per-request states."""

    def __init__(self, library: ctypes.CDLL) -> None:
        self._lib = library
        api = _WasmtimeApi(*(_address(ffi.dll[f"wasmtime_{name}"]) for name, _ in _WasmtimeApi._fields_))
        if library.edge_wasi_init(
            ctypes.byref(api),
            ctypes.sizeof(_raw.Extern),
            _raw.EXTERN_OF_OFFSET,
            ctypes.sizeof(_raw.ValRaw),
            ctypes.sizeof(CgiOutcome),
        ):
            raise OSError("wasi_cgi.c was built against a different wasmtime C-API layout")
        library.edge_wasi_state_new.restype = _P
        library.edge_wasi_state_new.argtypes = ()
        library.edge_wasi_state_free.restype = None
        library.edge_wasi_state_free.argtypes = (_P,)
        self.reset = library.edge_wasi_state_reset
        self.reset.restype = ctypes.c_int
        self.reset.argtypes = (
            _P,
            ctypes.c_char_p,
            _U64,
            _U32,
            ctypes.c_char_p,
            _U64,
            _U32,
            ctypes.c_char_p,
            _U64,
            _U64,
        )
        self._callbacks = {name: _address(getattr(library, f"edge_wasi_{name}")) for name in SIGNATURES}
        # The function types live as long as this object: the linker copies them, but
        # keeping them costs nothing and rules out a use-after-free on any version.
        self._types = {name: FuncType(params, results) for name, (params, results) in SIGNATURES.items()}
        self._free: list[CgiState] = []
        self._closed = False

    @staticmethod
    def covers(module: wasmtime.Module) -> bool:
        """True when every import of ``module`` is a WASI function implemented here."""
        return all(imp.module == WASI_MODULE and imp.name in SIGNATURES for imp in module.imports)

    def define(self, linker: wasmtime.Linker) -> None:
        """Define every implemented WASI function in ``linker``."""
        module = WASI_MODULE.encode()
        linker_ptr = _address(linker.ptr())
        for name, callback in self._callbacks.items():
            encoded = name.encode()
            error = _raw.linker_define_func_unchecked(
                linker_ptr,
                module,
                len(module),
                encoded,
                len(encoded),
                _address(self._types[name].ptr()),
                callback,
                None,
                None,
            )
            if error:
                raise OSError(f"cannot define WASI {name}: {_raw.take_error(error)[1]}")

    def acquire(self) -> CgiState:
        """A state no other request is using (list.pop is atomic: no lock on this path)."""
        try:
            return self._free.pop()
        except IndexError:
            address = self._lib.edge_wasi_state_new()
            if not address:
                raise MemoryError("cannot allocate a WASI state") from None
            return CgiState(address)

    def release(self, state: CgiState) -> None:
        """Give ``state`` back for the next request (freed instead once the pool is closed)."""
        if self._closed:
            self._lib.edge_wasi_state_free(state.address)
        else:
            self._free.append(state)

    def close(self) -> None:
        """Free the idle states; one still in use is freed when it is released."""
        self._closed = True
        while self._free:
            self._lib.edge_wasi_state_free(self._free.pop().address)


def _address(obj: Any) -> int:
    value = ctypes.cast(obj, _P).value
    assert value is not None
    return value


def load_native_wasi() -> NativeWasi | None:
    """The native library when it is built, usable here and not declined, else None."""
    choice = os.environ.get(CHOICE_ENV) or "native"
    if choice not in CHOICES:
        raise ValueError(f"{CHOICE_ENV}={choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "wasmtime" or not LIBRARY.exists():
        return None
    try:
        return NativeWasi(ctypes.CDLL(str(LIBRARY)))
    except OSError as exc:
        logger.warning("native WASI unavailable, using wasmtime's: %s", exc)
        return None
