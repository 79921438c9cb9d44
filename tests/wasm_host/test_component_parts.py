"""The wasi-http ABI's parts that need no real component: response fields, interface
versions, the component cache, and the ``list<u8>`` fast path against wasmtime-py's own."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime
from hypothesis import given
from hypothesis import strategies as st
from wasmtime import _ffi as ffi
from wasmtime.component import Component, FuncType, ListType

from wasm_host import EngineConfig, InvalidOutputError, ModuleInvalidError, WasmEngine
from wasm_host.component_bytes import _original_from_c, bytes_from_c, bytes_to_c
from wasm_host.component_cache import COMPONENT, ComponentCache, is_component
from wasm_host.component_handler import response_headers
from wasm_host.component_wasi import versions_by_interface
from wasm_host.httpfields import HOP_BY_HOP

COMPONENTS = Path(__file__).resolve().parents[2] / "handlers" / "components"


@pytest.fixture(scope="module")
def component_engine() -> Iterator[WasmEngine]:
    with WasmEngine(EngineConfig(epoch_tick_s=0.002, pool_total_instances=8)) as running:
        yield running


# pure parts ----------------------------------------------------------------------------------------

_TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~", min_size=1)
_SAFE_NAME = _TOKEN.filter(lambda name: name.lower() not in HOP_BY_HOP and name.lower() != "content-length")
_VALUE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


@given(st.lists(st.tuples(_SAFE_NAME, _VALUE), max_size=20), st.integers(0, 10**9))
def test_response_fields_keep_order_and_repeats_with_names_lowered(
    entries: list[tuple[str, str]], size: int
) -> None:
    raw = [(name, value.encode()) for name, value in entries]
    assert response_headers(raw, size) == tuple((name.lower(), value) for name, value in entries)


@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_content_length_must_match_the_body_and_is_dropped(declared: int, size: int) -> None:
    entries = [("Content-Length", str(declared).encode()), ("x-a", b"1")]
    if declared == size:
        assert response_headers(entries, size) == (("x-a", "1"),)
    else:
        with pytest.raises(InvalidOutputError, match="content-length"):
            response_headers(entries, size)


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP))
def test_hop_by_hop_response_fields_are_refused(name: str) -> None:
    with pytest.raises(InvalidOutputError, match="hop-by-hop"):
        response_headers([(name.upper(), b"x")], 0)


def test_a_response_field_value_must_be_utf8() -> None:
    with pytest.raises(InvalidOutputError, match="not UTF-8"):
        response_headers([("x-bin", b"\xff")], 0)


def test_interfaces_are_defined_at_each_0_2_version_imported() -> None:
    imports = [
        "wasi:io/streams@0.2.12",
        "wasi:http/types@0.2.10",
        "wasi:http/types@0.2.0",
        "wasi:io/streams@0.3.0",
    ]
    imports += [
        "fermyon:spin/llm@2.0.0",
        "wasi:keyvalue/store@0.2.0-draft2",
        "wasi:io/poll@0.2.0-rc-2023-11-10",
    ]
    imports += ["local"]
    assert versions_by_interface(imports) == {
        "wasi:io/streams": ["wasi:io/streams@0.2.12"],
        "wasi:http/types": ["wasi:http/types@0.2.10", "wasi:http/types@0.2.0"],
    }


# the component cache -------------------------------------------------------------------------------


def test_components_are_compiled_once_then_loaded_from_disk(
    component_engine: WasmEngine, tmp_path: Path
) -> None:
    wasm = bytes(wasmtime.wat2wasm("(component (core module))"))
    first = ComponentCache(component_engine, tmp_path).load_component(wasm)
    assert first.origin == "compiled"
    again = ComponentCache(component_engine, tmp_path)
    assert again.load_component(wasm).origin == "disk"
    assert again.load_component(wasm).origin == "disk"  # and then from memory
    assert again.stats.memory_hits == 1
    path = again.artefact_path(first.digest, COMPONENT)
    assert path is not None
    assert path.name.endswith(".component.cwasm")


def test_a_corrupt_component_artefact_is_discarded_and_recompiled(
    component_engine: WasmEngine, tmp_path: Path
) -> None:
    wasm = bytes(wasmtime.wat2wasm("(component (core module))"))
    cache = ComponentCache(component_engine, tmp_path)
    digest = cache.load_component(wasm).digest
    path = cache.artefact_path(digest, COMPONENT)
    assert path is not None
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    fresh = ComponentCache(component_engine, tmp_path)
    assert fresh.load_component(wasm).origin == "compiled"
    assert fresh.stats.corrupt == 1


def test_components_are_told_from_core_modules() -> None:
    assert is_component((COMPONENTS / "geo-greeting-js" / "geo_greeting_js.wasm").read_bytes()[:64])
    assert is_component(bytes(wasmtime.wat2wasm("(component)")))
    assert not is_component(bytes(wasmtime.wat2wasm("(module)")))
    assert not is_component(b"")


def test_bytes_that_are_no_component_are_invalid(component_engine: WasmEngine) -> None:
    with pytest.raises(ModuleInvalidError):
        ComponentCache(component_engine).load_component(b"\x00asm\x01\x00\x00\x00")


# the list<u8> fast path ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def byte_list_type() -> ListType:
    engine = wasmtime.Engine()
    component = Component(engine, '(component (import "f" (func (param "x" (list u8)))))')
    func_type = component.type.imports(engine)["f"].ty
    assert isinstance(func_type, FuncType)
    list_type = func_type.params[0][1]
    assert isinstance(list_type, ListType)
    return list_type


@given(st.binary(max_size=3000))
def test_fast_byte_lists_read_back_as_wasmtime_py_reads_them(byte_list_type: ListType, data: bytes) -> None:
    value = ffi.wasmtime_component_val_t()
    bytes_to_c(data, ctypes.pointer(value))
    assert _original_from_c(byte_list_type, value) == data  # wasmtime-py's own reader frees it
    again = ffi.wasmtime_component_val_t()
    bytes_to_c(data, ctypes.pointer(again))
    assert bytes_from_c(again) == data
