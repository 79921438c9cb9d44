"""The ``edge_http`` host functions: one module's outbound HTTP, run by run.

``EdgeHttpHost`` defines the functions a module imports (``wasm_host.outbound.SIGNATURES``)
into its linker and keeps each run's state (fetcher, deadline, counters, open answers),
keyed by the run's store context: ``begin`` and ``end`` bracket a run. Every URL goes
through ``outbound_policy.check_url`` before the fetcher sees it, and so does every
redirect the host follows: ``outbound.OutboundClient`` does that, and the counting, for
these functions and for components' ``wasi:http/outgoing-handler`` alike.

Interpreted on purpose (not in tools.accel's list): it holds ctypes callbacks. They are
defined through wasmtime's unchecked path (``_raw.UncheckedCallback``), not wasmtime-py's
``define_func``, whose trampoline cost ~30 µs a call (a ``Caller`` and a ``Val`` per
parameter): a guest's call into Python must also take the GIL back from the busy loop, and
both costs come out of the requests/s of a handler that calls out.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import wasmtime
from wasmtime import FuncType, ValType

from wasm_host import _raw
from wasm_host.outbound import (
    CACHE_CODES,
    EDGE_HTTP_MODULE,
    ERRORS,
    FLAG_BYPASS_CACHE,
    OK,
    SIGNATURES,
    OutboundClient,
    OutboundError,
    OutboundGrant,
    OutboundResponse,
    OutboundRun,
    method_problem,
    parse_header_block,
)

logger = logging.getLogger(__name__)

_I32 = ValType.i32()


@dataclass(slots=True)
class _Invocation:
    """One run's outbound state: its budget (fetcher, deadline, counters), open responses."""

    budget: OutboundRun
    responses: dict[int, _Open] = field(default_factory=dict)
    next_handle: int = 1
    last_error: str = ""


@dataclass(slots=True)
class _Open:
    response: OutboundResponse
    offset: int = 0


class EdgeHttpHost:
    """The ``edge_http`` functions for one module: defined into its linker once; per run,
    ``begin`` (with the store's context) and ``end`` bracket the guest's calls."""

    def __init__(self, grant: OutboundGrant, module_name: str) -> None:
        self.grant = grant
        self.module_name = module_name
        self._client = OutboundClient(grant, module_name)
        # Keyed by the store context's address: each run has its own store, on one thread.
        self._runs: dict[int, _Invocation] = {}
        self._keep: list[tuple[FuncType, object]] = []

    def define(self, linker: wasmtime.Linker, imported: Iterable[str]) -> None:
        """Define the imported functions in ``linker``, through wasmtime's unchecked path."""
        module = EDGE_HTTP_MODULE.encode()
        linker_ptr = ctypes.cast(linker.ptr(), ctypes.c_void_p).value
        for name in imported:
            count = SIGNATURES[name]
            ty = FuncType([_I32] * count, [_I32])
            callback = _raw.UncheckedCallback(
                functools.partial(self._entry, getattr(self, f"_{name}"), count)
            )
            # The linker copies the type but not the callback: both live as long as this host.
            self._keep.append((ty, callback))
            encoded = name.encode()
            error = _raw.linker_define_func_unchecked(
                linker_ptr,
                module,
                len(module),
                encoded,
                len(encoded),
                ctypes.cast(ty.ptr(), ctypes.c_void_p).value,
                ctypes.cast(callback, ctypes.c_void_p).value,
                None,
                None,
            )
            if error:
                raise OSError(f"cannot define edge_http::{name}: {_raw.take_error(error)[1]}")

    @staticmethod
    def _entry(  # noqa: PLR0917 - wasmtime's callback signature, after the two bound
        function: Callable[..., int], count: int, env: int, caller: int, args: Any, total: int
    ) -> int:
        """A guest's call: unsigned i32 parameters in, the i32 result in ``args[0]``. Any
        exception is a host bug: it becomes a trap, never an exception across the C stack."""
        del env, total
        try:
            args[0].i32 = function(caller, *[args[i].i32 & 0xFFFFFFFF for i in range(count)])
        except Exception as exc:  # must not unwind through wasmtime
            logger.exception("edge_http host call failed")
            message = f"edge_http host error: {exc}".encode()
            return int(_raw.trap_new(message, len(message)) or 0)
        return 0

    def begin(self, ctx: int, timeout_s: float) -> None:
        self._runs[ctx] = _Invocation(OutboundRun.starting(timeout_s))

    def end(self, ctx: int) -> None:
        self._runs.pop(ctx, None)

    # --- the guest's functions ---------------------------------------------------------

    def _send(  # noqa: PLR0917 - the import's signature
        self,
        caller: Any,
        method_ptr: int,
        method_len: int,
        url_ptr: int,
        url_len: int,
        headers_ptr: int,
        headers_len: int,
        body_ptr: int,
        body_len: int,
        flags: int,
        response_out: int,
        buf: int,
        buf_len: int,
    ) -> int:
        run, memory = self._run(caller), _Memory(caller)
        try:
            method = memory.read(method_ptr, method_len).decode("ascii")
            url = memory.read(url_ptr, url_len).decode("utf-8")
            headers = parse_header_block(memory.read(headers_ptr, headers_len))
            body = memory.read(body_ptr, body_len)
        except (UnicodeDecodeError, ValueError) as exc:
            return self._fail(run, "invalid-request", f"cannot read the request: {exc}")
        except _MemoryAccessError as exc:
            return self._fail(run, "memory-access", str(exc))
        problem = method_problem(method)
        if problem is not None:
            return self._fail(run, "invalid-request", problem)
        code = self._exchange(run, method, url, headers, body, bypass=bool(flags & FLAG_BYPASS_CACHE))
        if isinstance(code, int):
            return code
        handle = run.next_handle
        run.next_handle += 1
        # The body's first buf_len bytes go with the answer: a small body needs no more calls.
        first = code.body[: max(buf_len, 0)]
        if memory.write(buf, first) != OK:
            return self._fail(
                run, "memory-access", f"the body buffer {buf:#x}+{len(first)} lies outside memory"
            )
        run.responses[handle] = _Open(code, offset=len(first))
        facts = (handle, code.status, CACHE_CODES.get(code.cache_status or "", 0), len(code.body), len(first))
        return memory.write(response_out, b"".join(value.to_bytes(4, "little") for value in facts))

    def _status(self, caller: Any, handle: int, status_out: int) -> int:
        run = self._run(caller)
        opened = run.responses.get(handle)
        if opened is None:
            return self._fail(run, "invalid-handle", f"no open response {handle}")
        return _Memory(caller).write_u32(status_out, opened.response.status)

    def _headers_get(self, caller: Any, handle: int, buf: int, buf_len: int, written_out: int) -> int:
        run = self._run(caller)
        opened = run.responses.get(handle)
        if opened is None:
            return self._fail(run, "invalid-handle", f"no open response {handle}")
        block = "".join(f"{k}: {v}\n" for k, v in opened.response.headers).encode("latin-1", "replace")
        return _Memory(caller).write_sized(buf, buf_len, written_out, block)

    def _header_get(  # noqa: PLR0917 - the import's signature
        self, caller: Any, handle: int, name_ptr: int, name_len: int, buf: int, buf_len: int, written_out: int
    ) -> int:
        run, memory = self._run(caller), _Memory(caller)
        opened = run.responses.get(handle)
        if opened is None:
            return self._fail(run, "invalid-handle", f"no open response {handle}")
        try:
            name = memory.read(name_ptr, name_len).decode("latin-1").lower()
        except _MemoryAccessError as exc:
            return self._fail(run, "memory-access", str(exc))
        values = [v for k, v in opened.response.headers if k == name]
        if not values:
            return ERRORS["header-not-found"]
        return memory.write_sized(buf, buf_len, written_out, ", ".join(values).encode("latin-1", "replace"))

    def _body_read(self, caller: Any, handle: int, buf: int, buf_len: int, read_out: int) -> int:
        run, memory = self._run(caller), _Memory(caller)
        opened = run.responses.get(handle)
        if opened is None:
            return self._fail(run, "invalid-handle", f"no open response {handle}")
        chunk = opened.response.body[opened.offset : opened.offset + max(buf_len, 0)]
        code = memory.write(buf, chunk)
        if code == OK:
            opened.offset += len(chunk)
            code = memory.write_u32(read_out, len(chunk))
        return code

    def _close(self, caller: Any, handle: int) -> int:
        run = self._run(caller)
        if run.responses.pop(handle, None) is None:
            return self._fail(run, "invalid-handle", f"no open response {handle}")
        return OK

    def _error_message(self, caller: Any, buf: int, buf_len: int, written_out: int) -> int:
        run = self._run(caller)
        return _Memory(caller).write_sized(buf, buf_len, written_out, run.last_error.encode())

    # --- the host's side -----------------------------------------------------------------

    def _run(self, caller: Any) -> _Invocation:
        run = self._runs.get(_context_address(caller))
        if run is None:  # a call from a start section before begin: nothing is allowed
            return _Invocation(OutboundRun(fetcher=None, deadline=0.0))
        return run

    def _fail(self, run: _Invocation, reason: str, message: str) -> int:
        run.last_error = message
        return ERRORS[reason]

    def _exchange(
        self,
        run: _Invocation,
        method: str,
        url: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        *,
        bypass: bool,
    ) -> OutboundResponse | int:
        """Send the request (``OutboundClient.send``: policy, limits, redirects): the final
        answer, or an error code (the message left in ``run.last_error``)."""
        try:
            return self._client.send(run.budget, method, url, headers, body, bypass=bypass)
        except OutboundError as exc:
            return self._fail(run, exc.reason, exc.message)


class _MemoryAccessError(Exception):
    pass


def _context_address(caller: int) -> int:
    return int(_raw.caller_context(caller) or 0)


class _Memory:
    """The calling instance's exported memory, bounds-checked."""

    __slots__ = ("_base", "_size")

    def __init__(self, caller: int) -> None:
        item = _raw.Extern()
        self._base, self._size = 0, 0
        if (
            _raw.caller_export_get(caller, b"memory", 6, ctypes.byref(item))
            and cast("int", item.kind) == _raw.EXTERN_MEMORY
        ):
            ctx = _raw.caller_context(caller)
            memory = ctypes.byref(item, _raw.EXTERN_OF_OFFSET)
            self._base = int(_raw.memory_data(ctx, memory) or 0)
            self._size = int(_raw.memory_data_size(ctx, memory))

    def _check(self, ptr: int, length: int) -> None:
        if ptr < 0 or length < 0 or ptr + length > self._size:
            raise _MemoryAccessError(
                f"{ptr:#x}+{length} lies outside the guest's memory ({self._size} bytes)"
            )

    def read(self, ptr: int, length: int) -> bytes:
        ptr, length = ptr & 0xFFFFFFFF, length & 0xFFFFFFFF
        if length == 0:
            return b""
        self._check(ptr, length)
        return ctypes.string_at(self._base + ptr, length)

    def write(self, ptr: int, data: bytes) -> int:
        ptr &= 0xFFFFFFFF
        try:
            self._check(ptr, len(data))
        except _MemoryAccessError:
            return ERRORS["memory-access"]
        if data:
            ctypes.memmove(self._base + ptr, data, len(data))
        return OK

    def write_u32(self, ptr: int, value: int) -> int:
        return self.write(ptr, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def write_sized(self, buf: int, buf_len: int, written_out: int, data: bytes) -> int:
        """Write ``data`` whole into ``buf`` and its size to ``written_out``; when it does
        not fit, only the size (the guest retries with a buffer that large)."""
        code = self.write_u32(written_out, len(data))
        if code != OK:
            return code
        if len(data) > (buf_len & 0xFFFFFFFF):
            return ERRORS["buffer-too-small"]
        return self.write(buf, data)
