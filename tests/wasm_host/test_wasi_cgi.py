"""The WASI calls a WAGI command makes, call by call, on both implementations.

Each probe runs once per ``engine`` parameter: wasi_cgi.c's native WASI and wasmtime's. A
probe does its calls, keeps what they returned in a 64-byte record at address 1024, and
prints the record as its body, so one assertion checks both implementations alike.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.wasm_host import wat
from tests.wasm_host.conftest import HANDLERS, MakeHandler
from wasm_host import HandlerExitError, ModuleCache, WasmEngine, WasmRequest, WasmTrapError, create_handler
from wasm_host.wagi import WagiHandler
from wasm_host.wasi_cgi import LIBRARY

EBADF = 8
EINVAL = 28

_IMPORTS = {
    "fd_write": "(param i32 i32 i32 i32) (result i32)",
    "fd_read": "(param i32 i32 i32 i32) (result i32)",
    "fd_close": "(param i32) (result i32)",
    "fd_prestat_get": "(param i32 i32) (result i32)",
    "args_sizes_get": "(param i32 i32) (result i32)",
    "args_get": "(param i32 i32) (result i32)",
    "environ_sizes_get": "(param i32 i32) (result i32)",
    "environ_get": "(param i32 i32) (result i32)",
    "clock_time_get": "(param i32 i64 i32) (result i32)",
    "random_get": "(param i32 i32) (result i32)",
    "proc_exit": "(param i32)",
}
_HEAD = b"content-type: application/octet-stream\n\n"


def probe(calls: str, *, extra_imports: str = "", memory: str = '(memory (export "memory") 1)') -> str:
    """A command running ``calls`` (WAT instructions), then printing the record at 1024."""
    imports = "".join(
        f'(import "wasi_snapshot_preview1" "{name}" (func ${name} {sig}))' for name, sig in _IMPORTS.items()
    )
    head = "".join(f"\\{b:02x}" for b in _HEAD)
    return f"""(module {imports} {extra_imports}
  {memory}
  (data (i32.const 0) "{head}")
  (func (export "_start")
    {calls}
    ;; two writes: fd_write writes only the first non-empty iovec of a list (both WASIs)
    (i32.store (i32.const 512) (i32.const 0)) (i32.store (i32.const 516) (i32.const {len(_HEAD)}))
    (drop (call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 528)))
    (i32.store (i32.const 512) (i32.const 1024)) (i32.store (i32.const 516) (i32.const 64))
    (drop (call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 528)))))"""


def record(
    make_handler: MakeHandler, calls: str, request: WasmRequest | None = None, **kwargs: object
) -> bytes:
    """The 64-byte record ``probe(calls)`` printed."""
    response = make_handler(probe(calls), **kwargs).handle(request or WasmRequest(method="GET", path="/"))
    assert response.status == 200
    assert len(response.body) == 64
    return response.body


def errno_of(call: str) -> str:
    """WAT storing ``call``'s errno as the record's first word."""
    return f"(i32.store (i32.const 1024) {call})"


def test_shipped_handlers_run_on_native_wasi(engine: WasmEngine, make_handler: MakeHandler) -> None:
    """C (wasi-libc) and Rust (std) commands, and the test probes, import only what wasi_cgi.c has."""
    modules = [
        HANDLERS / "geo-hello" / "geo_hello.wasm",
        HANDLERS / "geo-hello" / "geo_hello_rs.wasm",
        HANDLERS / "sensor-stats" / "sensor_stats.wasm",
    ]
    handlers = [make_handler(Path(path).read_bytes()) for path in modules]
    handlers += [make_handler(probe("")), make_handler(wat.WAGI_ENV_AND_STDIN)]
    for handler in handlers:
        assert isinstance(handler, WagiHandler)
        assert handler.native_wasi == (engine.native_wasi is not None)


def test_other_wasi_imports_fall_back_to_wasmtime(make_handler: MakeHandler) -> None:
    path_open = (
        '(import "wasi_snapshot_preview1" "path_open" '
        "(func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"
    )
    handler = make_handler(probe("", extra_imports=path_open))
    assert isinstance(handler, WagiHandler)
    assert not handler.native_wasi
    assert len(handler.handle(WasmRequest(method="GET", path="/")).body) == 64


def test_bad_descriptors(make_handler: MakeHandler) -> None:
    body = record(
        make_handler,
        errno_of("(call $fd_write (i32.const 7) (i32.const 512) (i32.const 0) (i32.const 528))")
        + "(i32.store (i32.const 1028)"
        + " (call $fd_read (i32.const 3) (i32.const 512) (i32.const 0) (i32.const 528)))"
        + "(i32.store (i32.const 1032) (call $fd_prestat_get (i32.const 3) (i32.const 600)))"
        + "(i32.store (i32.const 1036) (call $fd_close (i32.const 9)))",
    )
    assert struct.unpack_from("<4i", body) == (EBADF, EBADF, EBADF, EBADF)  # and no preopens at fd 3


def _iovec_at_600(address: int, size: int) -> str:
    """WAT writing one iovec {address, size} at address 600."""
    return f"(i32.store (i32.const 600) (i32.const {address})) (i32.store (i32.const 604) (i32.const {size}))"


@pytest.mark.parametrize(
    "call",
    [
        "(call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 528))",  # iovec list
        # an iovec's buffer
        _iovec_at_600(65530, 100)
        + "(call $fd_write (i32.const 1) (i32.const 600) (i32.const 1) (i32.const 528))",
        # the count of bytes read
        _iovec_at_600(700, 4)
        + "(call $fd_read (i32.const 0) (i32.const 600) (i32.const 1) (i32.const 65534))",
        "(call $environ_get (i32.const 700) (i32.const 65535))",  # the strings
        "(call $args_sizes_get (i32.const 700) (i32.const -1))",  # a result at 4 GiB - 1
        "(call $random_get (i32.const 65000) (i32.const 1000))",
        "(call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 65533))",
    ],
)
def test_pointers_outside_memory_trap(make_handler: MakeHandler, call: str) -> None:
    """As in wasmtime's WASI: the guest is stopped, not told EFAULT."""
    with pytest.raises(WasmTrapError, match=r"(?i)pointer out of bounds"):
        make_handler(probe(f"(drop {call})")).handle(WasmRequest(method="POST", path="/", body=b"body"))


def _read_into(address: int, size: int, nread_at: int) -> str:
    read = f"(drop (call $fd_read (i32.const 0) (i32.const 600) (i32.const 1) (i32.const {nread_at})))"
    return _iovec_at_600(address, size) + read


def test_stdin_is_the_request_body(make_handler: MakeHandler) -> None:
    # 8 + 8 + 4 bytes, then 0 at the end of the body.
    calls = "".join(_read_into(1040 + 8 * i, 8, 1024 + 4 * i) for i in range(4))
    body = record(make_handler, calls, WasmRequest(method="POST", path="/", body=b"abcdefghijklmnopqrst"))
    assert struct.unpack_from("<4I", body) == (8, 8, 4, 0)
    assert body[16:36] == b"abcdefghijklmnopqrst"


def test_arguments_are_the_module_name(make_handler: MakeHandler) -> None:
    calls = (
        errno_of("(call $args_sizes_get (i32.const 1028) (i32.const 1032))")
        + "(i32.store (i32.const 1036) (call $args_get (i32.const 1040) (i32.const 1044)))"
    )
    body = record(make_handler, calls, name="geo-hello")
    errno, argc, size, get_errno, argv0 = struct.unpack_from("<5I", body)
    assert (errno, argc, size, get_errno) == (0, 1, len(b"geo-hello\0"), 0)
    assert argv0 == 1044  # argv[0] points at the string written into the buffer
    assert body[20:30] == b"geo-hello\0"


def test_clocks_and_random(make_handler: MakeHandler) -> None:
    calls = (
        errno_of("(call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 1032))")
        + "(i32.store (i32.const 1028) (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 1040)))"
        + "(i32.store (i32.const 1052) (call $random_get (i32.const 1056) (i32.const 8)))"
        # the CPU-time clocks would tell the guest about the host process: refused
        + "(i32.store (i32.const 1064) (call $clock_time_get (i32.const 2) (i64.const 1) (i32.const 1072)))"
        + "(i32.store (i32.const 1068) (call $clock_time_get (i32.const 3) (i64.const 1) (i32.const 1072)))"
    )
    handler = make_handler(probe(calls))
    first = handler.handle(WasmRequest(method="GET", path="/")).body
    second = handler.handle(WasmRequest(method="GET", path="/")).body
    realtime_errno, monotonic_errno, realtime, monotonic, _, random_errno = struct.unpack_from(
        "<2i2Q2i", first
    )
    assert (realtime_errno, monotonic_errno, random_errno) == (0, 0, 0)
    assert abs(realtime / 1e9 - time.time()) < 60
    assert monotonic > 0
    assert first[32:40] != second[32:40]  # 8 random bytes, fresh each run
    assert struct.unpack_from("<2i", first, 40) == (EBADF, EBADF)


def test_native_iovec_lists_are_bounded(engine: WasmEngine, make_handler: MakeHandler) -> None:
    """Host code is not interrupted by the deadline: one call takes at most 1024 iovecs."""
    if engine.native_wasi is None:
        pytest.skip("wasmtime's WASI takes any count (docs/abi.md: a kept difference)")
    calls = _iovec_at_600(700, 0) + errno_of(
        "(call $fd_write (i32.const 1) (i32.const 600) (i32.const 1025) (i32.const 1028))"
    )
    assert struct.unpack_from("<i", record(make_handler, calls)) == (EINVAL,)


def test_an_unknown_clock_traps(make_handler: MakeHandler) -> None:
    handler = make_handler(
        probe("(drop (call $clock_time_get (i32.const 99) (i64.const 1) (i32.const 600)))")
    )
    with pytest.raises(WasmTrapError, match=r"(?i)clock"):
        handler.handle(WasmRequest(method="GET", path="/"))


def test_stdout_closed_then_written(make_handler: MakeHandler) -> None:
    calls = (
        "(drop (call $fd_close (i32.const 1)))"
        "(call $proc_exit (call $fd_write (i32.const 1) (i32.const 512) (i32.const 0) (i32.const 528)))"
    )
    with pytest.raises(HandlerExitError) as caught:
        make_handler(probe(calls)).handle(WasmRequest(method="GET", path="/"))
    assert caught.value.exit_code == EBADF


def test_a_module_without_memory_cannot_call_wasi(make_handler: MakeHandler) -> None:
    handler = make_handler(probe("", memory="(memory 1)"))
    with pytest.raises(WasmTrapError, match="memory export"):
        handler.handle(WasmRequest(method="GET", path="/"))


def test_states_are_reused_and_reset(engine: WasmEngine, make_handler: MakeHandler) -> None:
    """A big body and a big answer, then a small request: nothing leaks from one to the next."""
    echo = make_handler(wat.WAGI_ENV_AND_STDIN)
    big = echo.handle(WasmRequest(method="POST", path="/", body=b"x" * 300_000)).body
    assert big.endswith(b"\n--stdin--\n" + b"x" * 300_000)
    small = echo.handle(WasmRequest(method="POST", path="/", body=b"tiny")).body
    assert small.endswith(b"\n--stdin--\ntiny")
    if engine.native_wasi is not None:
        state = engine.native_wasi.acquire()
        engine.native_wasi.release(state)
        assert int(state.outcome.out_len) == len(b"content-type: text/plain\n\n" + small)  # it served both


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)


@pytest.fixture(scope="module")
def both_implementations(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[WagiHandler, WagiHandler]]:
    """The environment-and-stdin echo command on each WASI implementation."""
    if not LIBRARY.exists():
        pytest.skip("wasm_host/_wasi_cgi.so is not built")
    wasm = wat.WAGI_ENV_AND_STDIN.encode()
    with WasmEngine(native_wasi=True) as native, WasmEngine(native_wasi=False) as reference:
        on_native, on_wasmtime = (
            create_handler(engine, ModuleCache(engine, tmp_path_factory.mktemp("modules")).load(wasm))
            for engine in (native, reference)
        )
        assert isinstance(on_native, WagiHandler)
        assert isinstance(on_wasmtime, WagiHandler)
        assert on_native.native_wasi
        assert not on_wasmtime.native_wasi
        yield on_native, on_wasmtime


@given(
    path=_TEXT.map(lambda text: "/" + text),
    query=_TEXT,
    headers=st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), _TEXT), max_size=6),
    body=st.binary(max_size=3000),
)
def test_native_wasi_sees_what_wasmtime_wasi_sees(
    both_implementations: tuple[WagiHandler, WagiHandler],
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    request = WasmRequest(method="POST", path=path, query=query, headers=tuple(headers), body=body)
    native, reference = both_implementations
    assert native.handle(request) == reference.handle(request)
