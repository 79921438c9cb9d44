"""A fast path for ``list<u8>`` in wasmtime-py's component values (every body chunk is one).

wasmtime-py converts a ``list<u8>`` element by element: one Python call and one ctypes
struct per byte, so a 64 KiB body chunk costs ~50 ms each way (measured: a 300 KB
streamed response took 234 ms). The C API lays a list out as an array of
``wasmtime_component_val_t`` (a kind byte, then a union), so the bytes can be scattered
into / gathered from that array with strided ``bytearray`` slices, which run in C.
``install`` swaps the two methods of ``ListType`` for byte lists only (other lists keep
wasmtime-py's own code); it is idempotent and checked by tests against the original.
"""

from __future__ import annotations

import ctypes
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime.component import ListType

_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_PAYLOAD = ffi.wasmtime_component_val_t.of.offset
_KIND_U8: int = ffi.WASMTIME_COMPONENT_U8.value
_KIND_LIST = ffi.WASMTIME_COMPONENT_LIST

_original_to_c = ListType.convert_to_c
_original_from_c = ListType.convert_from_c


def bytes_to_c(val: bytes, ptr: Any) -> None:
    """Lower ``val`` into the ``wasmtime_component_val_t`` at ``ptr`` as a ``list<u8>``."""
    count = len(val)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, count)
    if count:
        layout = bytearray(count * _VAL_SIZE)
        layout[0::_VAL_SIZE] = bytes((_KIND_U8,)) * count
        layout[_PAYLOAD::_VAL_SIZE] = val
        ctypes.memmove(raw.data, (ctypes.c_char * len(layout)).from_buffer(layout), len(layout))
    ptr.contents.kind = _KIND_LIST
    ptr.contents.of.list = raw


def bytes_from_c(c: Any) -> bytes:
    """Lift (and free) the ``list<u8>`` held by ``c``."""
    items = c.of.list
    try:
        if not items.size:
            return b""
        layout = ctypes.string_at(items.data, items.size * _VAL_SIZE)
        return layout[_PAYLOAD::_VAL_SIZE]
    finally:
        ffi.wasmtime_component_vallist_delete(ctypes.byref(items))


def _to_c(self: ListType, store: Any, val: Any, ptr: Any) -> None:
    if self._is_bytes():
        if not isinstance(val, bytes | bytearray):
            raise TypeError("expected bytes value")
        bytes_to_c(bytes(val), ptr)
        return
    _original_to_c(self, store, val, ptr)


def _from_c(self: ListType, c: Any) -> Any:
    if self._is_bytes():
        return bytes_from_c(c)
    return _original_from_c(self, c)


def install() -> None:
    """Use the fast path for every ``list<u8>`` from now on (process-wide)."""
    ListType.convert_to_c = _to_c  # type: ignore[method-assign]
    ListType.convert_from_c = _from_c  # type: ignore[method-assign]
