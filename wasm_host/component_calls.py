"""Host functions for components with their types read once, not on every call.

wasmtime-py's ``LinkerInstance.add_func`` rebuilds the function's type on every call (a
``FuncType``, then each parameter's ``ValType`` and, for a ``variant`` such as
``error-code`` with its ~40 cases, every case), about 170 ctypes calls per request of the
geo greeting. ``add_func`` here registers the same C callback shape, but reads the types on
a function's first call and keeps them, "frozen": a frozen type answers its cases, element
or fields from memory. A function's type is fixed by its name in its interface, so the
cache is per function. Exceptions follow wasmtime-py's ``catch_exceptions`` contract, so
``component_wasi.host`` still records them in the request's state.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime._slab import Slab
from wasmtime.component import (
    FuncType,
    ListType,
    OptionType,
    RecordType,
    ResultType,
    TupleType,
    ValType,
    VariantType,
)
from wasmtime.component._enter import catch_exceptions
from wasmtime.component._linker import LinkerInstance


class _FrozenList(ListType):
    @property
    def element(self) -> ValType:
        frozen: ValType = self.__dict__["frozen_element"]
        return frozen

    def _is_bytes(self) -> bool:
        is_bytes: bool = self.__dict__["frozen_is_bytes"]
        return is_bytes


class _FrozenRecord(RecordType):
    @property
    def fields(self) -> list[tuple[str, ValType]]:
        frozen: list[tuple[str, ValType]] = self.__dict__["frozen_fields"]
        return frozen


class _FrozenTuple(TupleType):
    @property
    def elements(self) -> list[ValType]:
        frozen: list[ValType] = self.__dict__["frozen_elements"]
        return frozen


def freeze(ty: ValType) -> ValType:
    """``ty`` with its nested types read once and kept (in place; returns ``ty``)."""
    if isinstance(ty, ListType):
        element = freeze(ty.element)
        is_bytes = ty._is_bytes()
        ty.__class__ = _FrozenList
        ty.__dict__.update(frozen_element=element, frozen_is_bytes=is_bytes)
    elif isinstance(ty, RecordType):
        fields = [(name, freeze(t)) for name, t in ty.fields]
        ty.__class__ = _FrozenRecord
        ty.__dict__["frozen_fields"] = fields
    elif isinstance(ty, TupleType):
        elements = [freeze(t) for t in ty.elements]
        ty.__class__ = _FrozenTuple
        ty.__dict__["frozen_elements"] = elements
    elif isinstance(ty, VariantType | OptionType | ResultType):
        cases = [(name, freeze(t) if t is not None else None) for name, t in ty._cases()]
        tagged = ty._tagged()
        # Instance attributes shadow these two (plain methods, not properties).
        ty.__dict__["_cases"] = lambda: cases
        ty.__dict__["_tagged"] = lambda: tagged
    return ty


@dataclass
class _Entry:
    func: Callable[..., Any]
    params: list[ValType] = field(default_factory=list)
    result: ValType | None = None
    typed: bool = False


_ENTRIES: Slab[_Entry] = Slab()


@ffi.wasmtime_component_func_callback_t  # type: ignore[untyped-decorator]
def _call(  # noqa: PLR0917 - the C callback's signature
    idx: int, context: Any, ty_raw: Any, args: Any, nargs: int, results: Any, nresults: int
) -> int:
    def run(store: Any) -> None:
        entry = _ENTRIES.get(idx or 0)
        if not entry.typed:
            with FuncType._from_ptr(ty_raw, owner=store) as fty:
                entry.params = [freeze(ty) for _, ty in fty.params]
                result = fty.result
                entry.result = freeze(result) if result is not None else None
            entry.typed = True
        value = entry.func(store, *[ty.convert_from_c(args[i]) for i, ty in enumerate(entry.params)])
        if entry.result is not None:
            entry.result.convert_to_c(store, value, results)

    outcome: int = catch_exceptions(context, run)  # type: ignore[assignment]
    return outcome


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
def _finalize(idx: int | None) -> None:
    if _ENTRIES:
        _ENTRIES.deallocate(idx or 0)


def add_func(instance: LinkerInstance, name: str, func: Callable[..., Any]) -> None:
    """Define ``func(store, *params)`` as ``name`` in ``instance``, its types cached."""
    instance._assert_not_locked()
    encoded = name.encode()
    idx = _ENTRIES.allocate(_Entry(func))
    error = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(encoded), len(encoded), _call, idx, _finalize
    )
    if error:
        raise WasmtimeError._from_ptr(error)
