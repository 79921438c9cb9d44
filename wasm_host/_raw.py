"""Raw wasmtime C-API entry points for the per-request hot path.

wasmtime-py's generic wrappers cost ~18 us per call (type lookups, ``Val`` boxing, context
managers); these prototypes take plain integers (``c_void_p``) and cost ~2 us. Each is a
fresh function object from ``dll[name]``, so setting our ``argtypes`` never changes the ones
wasmtime-py itself relies on. Every pointer passed here must come from wasmtime and be alive:
the callers in this package own that discipline.
"""

from __future__ import annotations

import array
import ctypes
import sys
from typing import Any

from wasmtime import TrapCode
from wasmtime import _ffi as ffi

_P = ctypes.c_void_p
_SIZE = ctypes.c_size_t
_BOOL = ctypes.c_bool
_I64 = ctypes.c_int64


def _fn(name: str, restype: Any, *argtypes: Any) -> Any:
    func = ffi.dll[name]
    func.restype = restype
    func.argtypes = argtypes
    return func


wasi_config_new = _fn("wasi_config_new", _P)
wasi_config_delete = _fn("wasi_config_delete", None, _P)
wasi_config_set_argv = _fn("wasi_config_set_argv", _BOOL, _P, _SIZE, _P)
wasi_config_set_env = _fn("wasi_config_set_env", _BOOL, _P, _SIZE, _P, _P)
wasi_config_set_stdin_bytes = _fn("wasi_config_set_stdin_bytes", None, _P, _P)
wasi_config_set_stdout_file = _fn("wasi_config_set_stdout_file", _BOOL, _P, ctypes.c_char_p)
wasm_byte_vec_new = _fn("wasm_byte_vec_new", None, _P, _SIZE, ctypes.c_char_p)
wasm_byte_vec_delete = _fn("wasm_byte_vec_delete", None, _P)
store_new = _fn("wasmtime_store_new", _P, _P, _P, _P)
store_context = _fn("wasmtime_store_context", _P, _P)
store_delete = _fn("wasmtime_store_delete", None, _P)
store_limiter = _fn("wasmtime_store_limiter", None, _P, _I64, _I64, _I64, _I64, _I64)
context_set_epoch_deadline = _fn("wasmtime_context_set_epoch_deadline", None, _P, ctypes.c_uint64)
context_set_wasi = _fn("wasmtime_context_set_wasi", _P, _P, _P)
instance_pre_instantiate = _fn("wasmtime_instance_pre_instantiate", _P, _P, _P, _P, _P)
instance_export_get = _fn("wasmtime_instance_export_get", _BOOL, _P, _P, ctypes.c_char_p, _SIZE, _P)
linker_define_func_unchecked = _fn(
    "wasmtime_linker_define_func_unchecked",
    _P,
    _P,
    ctypes.c_char_p,
    _SIZE,
    ctypes.c_char_p,
    _SIZE,
    _P,
    _P,
    _P,
    _P,
)
func_call_unchecked = _fn("wasmtime_func_call_unchecked", _P, _P, _P, _P, _SIZE, _P)
memory_data = _fn("wasmtime_memory_data", _P, _P, _P)
caller_context = _fn("wasmtime_caller_context", _P, _P)
caller_export_get = _fn("wasmtime_caller_export_get", _BOOL, _P, ctypes.c_char_p, _SIZE, _P)
trap_new = _fn("wasmtime_trap_new", _P, ctypes.c_char_p, _SIZE)
memory_data_size = _fn("wasmtime_memory_data_size", _SIZE, _P, _P)
error_exit_status = _fn("wasmtime_error_exit_status", _BOOL, _P, _P)
error_message = _fn("wasmtime_error_message", None, _P, _P)
error_delete = _fn("wasmtime_error_delete", None, _P)
trap_message = _fn("wasm_trap_message", None, _P, _P)
trap_code = _fn("wasmtime_trap_code", _BOOL, _P, _P)
trap_delete = _fn("wasm_trap_delete", None, _P)

# A host function called through wasmtime's unchecked path: (env, caller, args and results,
# their count) -> a trap or NULL. Costs a ctypes callback, not wasmtime-py's trampoline
# (which builds a Caller and a Val per parameter: ~30 µs a call, measured).
UncheckedCallback = ctypes.CFUNCTYPE(_SIZE, _P, _P, ctypes.POINTER(ffi.wasmtime_val_raw_t), _SIZE)

Instance = ffi.wasmtime_instance_t
Extern = ffi.wasmtime_extern_t
ByteVec = ffi.wasm_byte_vec_t
ValRaw = ffi.wasmtime_val_raw_t
EXTERN_FUNC: int = ffi.WASMTIME_EXTERN_FUNC.value
EXTERN_MEMORY: int = ffi.WASMTIME_EXTERN_MEMORY.value
# The union inside wasmtime_extern_t holds the func/memory handle a call takes by pointer.
EXTERN_OF_OFFSET: int = ffi.wasmtime_extern_t.of.offset


class ReactorSlots(ctypes.Structure):
    """Per-request out-parameters of a reactor request's raw calls, allocated as one ctypes
    object (here, not in ``reactor``: that module is compiled by tools.accel, and mypyc
    does not compile ctypes structures)."""

    _fields_ = (
        ("init", Extern),
        ("alloc", Extern),
        ("memory", Extern),
        ("handle", Extern),
        ("args", ValRaw * 2),
        ("trap", ctypes.c_void_p),
    )


REACTOR_TRAP_OFFSET: int = ReactorSlots.trap.offset

TRAP_KINDS: dict[int, str] = {
    TrapCode.STACK_OVERFLOW.value: "stack overflow",
    TrapCode.MEMORY_OUT_OF_BOUNDS.value: "out of bounds memory access",
    TrapCode.HEAP_MISALIGNED.value: "misaligned memory access",
    TrapCode.TABLE_OUT_OF_BOUNDS.value: "undefined element",
    TrapCode.INDIRECT_CALL_TO_NULL.value: "uninitialized element",
    TrapCode.BAD_SIGNATURE.value: "indirect call type mismatch",
    TrapCode.INTEGER_OVERFLOW.value: "integer overflow",
    TrapCode.INTEGER_DIVISION_BY_ZERO.value: "integer divide by zero",
    TrapCode.BAD_CONVERSION_TO_INTEGER.value: "invalid conversion to integer",
    TrapCode.UNREACHABLE.value: "unreachable",
    TrapCode.INTERRUPT.value: "interrupt",
    TrapCode.OUT_OF_FUEL.value: "out of fuel",
}
INTERRUPT_KINDS = frozenset({"interrupt", "out of fuel"})


def _take_vec(vec: Any) -> str:
    text = ctypes.string_at(vec.data, vec.size).decode("utf-8", "replace")
    wasm_byte_vec_delete(ctypes.byref(vec))
    return text


def take_error(error: int) -> tuple[int | None, str]:
    """Consume a ``wasmtime_error_t``: its WASI exit status (if it is one) and its message."""
    code = ctypes.c_int(0)
    exit_status = code.value if error_exit_status(error, ctypes.byref(code)) else None
    if exit_status is None:
        code_vec = ByteVec()
        error_message(error, ctypes.byref(code_vec))
        message = _take_vec(code_vec)
    else:
        message = f"exit status {exit_status}"
    error_delete(error)
    return (code.value if exit_status is not None else None), message


def discard(error: int | None, trap: int | None) -> None:
    """Delete an expected error and trap (one the host raised itself to stop a guest)."""
    if error:
        error_delete(error)
    if trap:
        trap_delete(trap)


def take_trap(trap: int) -> tuple[str, str]:
    """Consume a ``wasm_trap_t``: its kind (from the trap code) and its full message."""
    code = ctypes.c_uint8(0)
    has_code = trap_code(trap, ctypes.byref(code))
    vec = ByteVec()
    trap_message(trap, ctypes.byref(vec))
    message = _take_vec(vec)
    trap_delete(trap)
    if has_code:
        kind = TRAP_KINDS.get(code.value)
        if kind is None:
            kind = TrapCode(code.value).name.lower().replace("_", " ")
        return kind, message
    return "host error", message


def _bytes_data_offset() -> int | None:
    # CPython keeps a bytes object's characters inline at a fixed offset from its address
    # (``ob_sval``), NUL-terminated. Verified here, not assumed: None means "use ctypes".
    if sys.implementation.name != "cpython":
        return None
    offset = bytes.__basicsize__ - 1
    probe = b"edge-probe"
    return (
        offset if ctypes.cast(ctypes.c_char_p(probe), ctypes.c_void_p).value == id(probe) + offset else None
    )


_BYTES_DATA_OFFSET = _bytes_data_offset()


def set_env(config: int, names: list[bytes], values: list[bytes]) -> bool:
    """``wasi_config_set_env`` from parallel lists (it copies the strings).

    Here, in an interpreted module, because ``cstring_array``'s keep-alives must outlive
    the call: this frame holds them (and the lists) until it returns, which a module
    compiled by tools.accel would not guarantee.
    """
    names_ptr, names_keep = cstring_array(names)
    values_ptr, values_keep = cstring_array(values)
    ok = bool(wasi_config_set_env(config, len(names), names_ptr, values_ptr))
    del names_keep, values_keep
    return ok


def cstring_array(items: list[bytes]) -> tuple[int, object]:
    """Address of a ``const char*[]`` pointing into ``items``, and the object to keep alive.

    Building a ``(c_char_p * n)`` costs ~0.2 us per element; an ``array('Q')`` of addresses
    costs a third of that, and env arrays are built on every WAGI request. Both ``items``
    and the returned keep-alive must stay referenced until the C call returns, so only
    interpreted code may use it (``set_env``): a module compiled by tools.accel (mypyc)
    frees a local as soon as it is dead, and ``del keep`` after the call does not keep it
    alive.
    """
    if _BYTES_DATA_OFFSET is None:
        fallback = (ctypes.c_char_p * len(items))(*items)
        return ctypes.addressof(fallback), fallback
    offset = _BYTES_DATA_OFFSET
    pointers = array.array("Q", [id(item) + offset for item in items])
    return pointers.buffer_info()[0], pointers
