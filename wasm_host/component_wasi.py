"""The core of our WASI 0.2 host for HTTP components: ``wasi:io``, per-request state, definitions.

wasmtime's C API gives the host no way to make a ``wasi:http`` ``incoming-request``, so the
HTTP types are ours (``component_http``), and with them ``wasi:io`` (here: its streams
carry the bodies) and every interface whose functions hand out streams or pollables:
stdio and ``wasi:clocks/monotonic-clock`` (``component_cli``, with the small rest a Spin
SDK component imports: environment, exit, wall clock, random). wasmtime's own WASI
(``add_wasip2``) cannot be mixed in: its functions hand out its own stream resources,
which ours could not read. So the whole surface a guest can reach is these three
modules: filesystem, sockets and Spin's own host APIs are left to
``define_unknown_imports_as_traps`` and trap when called.

Resources are plain Python objects in a per-request table (``ComponentState``), named by
the integer "rep" wasmtime hands back. Host functions find the running request's state in
a thread-local: a request runs synchronously on one thread, and its host calls come back
on that thread. Values follow wasmtime-py's conventions: a ``result``/``variant`` whose
cases have distinct Python classes is passed untagged (``None`` for a unit case, the
payload otherwise), one whose cases overlap as ``Variant(tag, payload)``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from wasmtime import WasmtimeError
from wasmtime.component import LinkerInstance, ResourceAny, ResourceHost, ResourceType, Variant

from wasm_host import component_calls

# Ids of the host resource types (any distinct integers).
T_ERROR, T_POLLABLE, T_INPUT, T_OUTPUT, T_TERM_IN, T_TERM_OUT = range(1, 7)
# Bytes of stdout/stderr kept per request (the last ones: a traceback ends with its cause).
MAX_LOG_BYTES = 8 * 1024
OK = Variant("ok")
ERR_CLOSED = Variant("err")  # result<_, stream-error> with the untagged ``closed`` case


class GuestExitError(Exception):
    """The guest called ``wasi:cli/exit.exit``; ``ok`` is its status."""

    def __init__(self, ok: bool) -> None:
        super().__init__(f"component exited with {'success' if ok else 'failure'}")
        self.ok = ok


class HostRefusalError(Exception):
    """A guest called something the host refuses (e.g. outgoing HTTP); the request fails."""


class InputStream:
    """Bytes the guest reads (a request body, empty stdin)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes | None:
        """Up to ``size`` bytes, or None at the end (``closed``)."""
        if self.pos >= len(self.data):
            return None
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk


class OutputStream:
    """Bytes the guest writes: into ``sink``, through ``accept`` (which may refuse)."""

    def __init__(self, accept: Callable[[bytes], None]) -> None:
        self.accept = accept
        self.closed = False


class Pollable:
    """Ready at ``ready_at`` (monotonic seconds); streams' pollables are ready at once."""

    def __init__(self, ready_at: float = 0.0) -> None:
        self.ready_at = ready_at

    def ready_time(self) -> float:
        """When this pollable is ready (``math.inf``: not before something else happens)."""
        return self.ready_at


class ComponentState:
    """Everything one request's host calls share: the resource table and captured stdio."""

    def __init__(self, env: dict[str, str], deadline: float) -> None:
        self.env = env
        self.deadline = deadline
        self.table: dict[int, object] = {}
        self.next_rep = 1
        self.log = bytearray()
        # The exception a host function raised: wasmtime-py keeps the last one in a
        # process-wide global, which another thread's failure could take first.
        self.failure: BaseException | None = None

    def add(self, obj: object) -> int:
        rep = self.next_rep
        self.next_rep += 1
        self.table[rep] = obj
        return rep

    def own(self, obj: object, type_id: int) -> ResourceHost:
        return ResourceHost.own(self.add(obj), type_id)

    def get(self, store: Any, handle: ResourceAny) -> Any:
        return self.table[handle.to_host(store).rep]

    def take(self, store: Any, handle: ResourceAny) -> Any:
        """Resolve an ``own`` handle the guest gave up: the object leaves the table."""
        return self.table.pop(handle.to_host(store).rep)

    def write_log(self, data: bytes) -> None:
        self.log += data[-MAX_LOG_BYTES:]
        if len(self.log) > 2 * MAX_LOG_BYTES:
            del self.log[:-MAX_LOG_BYTES]


_local = threading.local()


def current() -> ComponentState:
    state: ComponentState | None = getattr(_local, "state", None)
    if state is None:
        raise HostRefusalError("a component host call arrived outside a request")
    return state


def set_current(state: ComponentState | None) -> None:
    _local.state = state


def host(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a host function so an exception it raises is kept in the request's state.

    wasmtime-py would keep any other exception in a process-wide global and re-raise it
    from whichever thread's call fails next; a ``WasmtimeError`` it passes to wasmtime as
    the call's error instead, which ends the guest's call on this thread only.
    """

    def wrapper(store: Any, *args: Any) -> Any:
        try:
            return func(store, *args)
        except Exception as exc:
            state: ComponentState | None = getattr(_local, "state", None)
            if state is not None and state.failure is None:
                state.failure = exc
            raise WasmtimeError(f"host function failed: {exc}") from exc

    wrapper.__name__ = func.__name__
    return wrapper


def _drop(store: Any, rep: int) -> None:
    state: ComponentState | None = getattr(_local, "state", None)
    if state is not None:
        state.table.pop(rep, None)


class Interface:
    """The definitions of one interface, recorded to be replayed under each version."""

    def __init__(self) -> None:
        self.resources: list[tuple[str, int]] = []
        self.funcs: list[tuple[str, Callable[..., Any]]] = []


_RELEASE_0_2 = re.compile(r"0\.2\.\d+")


def versions_by_interface(import_names: list[str]) -> dict[str, list[str]]:
    """The ``0.2.x`` imports among ``import_names``, by interface name without version
    (not pre-releases such as ``0.2.0-rc-2023-12-05``: their interfaces differ)."""
    versions: dict[str, list[str]] = {}
    for name in import_names:
        base, _, version = name.partition("@")
        if _RELEASE_0_2.fullmatch(version):
            versions.setdefault(base, []).append(name)
    return versions


class Definer:
    """Defines each interface under every ``0.2.x`` version of it the component imports.

    wasmtime matches an import to a definition of the same name and version; a component
    built against ``wasi:http@0.2.10`` (componentize-js) imports ``...@0.2.10`` where a
    Spin SDK 3 one imports ``...@0.2.0``, and the interfaces did not change within 0.2
    for what we define. An interface the component does not import is not defined.
    """

    def __init__(self, root: LinkerInstance, import_names: list[str]) -> None:
        self.root = root
        self.versions = versions_by_interface(import_names)

    @contextmanager
    def interface(self, base: str) -> Iterator[Interface]:
        recorded = Interface()
        yield recorded
        for name in self.versions.get(base, []):
            with self.root.add_instance(name) as instance:
                for resource, type_id in recorded.resources:
                    instance.add_resource(resource, ResourceType.host(type_id), _drop)
                for func_name, func in recorded.funcs:
                    if CACHED_TYPES:
                        component_calls.add_func(instance, func_name, func)
                    else:
                        instance.add_func(func_name, func)


def define_resource(instance: Interface, name: str, type_id: int) -> None:
    instance.resources.append((name, type_id))


# True: host functions read their types once (``component_calls``); False: wasmtime-py's
# ``add_func``, which rebuilds them on every call (kept to measure the difference).
CACHED_TYPES = True


def define_funcs(instance: Interface, funcs: dict[str, Callable[..., Any]]) -> None:
    instance.funcs.extend((name, host(func)) for name, func in funcs.items())


# wasi:io -------------------------------------------------------------------------------


def _read(store: Any, this: ResourceAny, size: int) -> bytes | None:
    stream: InputStream = current().get(store, this)
    return stream.take(min(size, 1 << 20))


def _skip(store: Any, this: ResourceAny, size: int) -> int | None:
    chunk = _read(store, this, size)
    return None if chunk is None else len(chunk)


def _subscribe(store: Any, this: ResourceAny) -> ResourceHost:
    # Resolving a borrowed handle (``get``) is also what ends the borrow: wasmtime fails
    # the call if a borrow the host was lent is still outstanding when it returns.
    state = current()
    state.get(store, this)
    return state.own(Pollable(), T_POLLABLE)


# What ``check-write`` permits at once, and the most one ``blocking-write-and-flush`` (or
# ``blocking-write-zeroes-and-flush``) may carry: 4096 is the WASI 0.2 contract, which
# wasmtime-wasi enforces with a trap, so a component that breaks it here would break there.
WRITE_PERMIT = 1 << 20
MAX_BLOCKING_WRITE = 4096


def _check_write(store: Any, this: ResourceAny) -> int | None:
    stream: OutputStream = current().get(store, this)
    return None if stream.closed else WRITE_PERMIT


def _write(store: Any, this: ResourceAny, contents: bytes) -> Variant:
    stream: OutputStream = current().get(store, this)
    if len(contents) > WRITE_PERMIT:
        raise HostRefusalError(f"write of {len(contents)} bytes; check-write permits {WRITE_PERMIT}")
    if stream.closed:
        return ERR_CLOSED
    stream.accept(contents)
    return OK


def _blocking_write(store: Any, this: ResourceAny, contents: bytes) -> Variant:
    if len(contents) > MAX_BLOCKING_WRITE:
        raise HostRefusalError(
            f"blocking-write-and-flush of {len(contents)} bytes; at most {MAX_BLOCKING_WRITE} per call"
        )
    return _write(store, this, contents)


def _write_zeroes(store: Any, this: ResourceAny, size: int) -> Variant:
    if size > WRITE_PERMIT:
        raise HostRefusalError(f"write-zeroes of {size} bytes; check-write permits {WRITE_PERMIT}")
    return _write(store, this, bytes(size))


def _blocking_write_zeroes(store: Any, this: ResourceAny, size: int) -> Variant:
    if size > MAX_BLOCKING_WRITE:
        raise HostRefusalError(
            f"blocking-write-zeroes-and-flush of {size} bytes; at most {MAX_BLOCKING_WRITE}"
        )
    return _write(store, this, bytes(size))


def _flush(store: Any, this: ResourceAny) -> Variant:
    stream: OutputStream = current().get(store, this)
    return ERR_CLOSED if stream.closed else OK


def _splice(store: Any, this: ResourceAny, src: ResourceAny, size: int) -> int | None:
    state = current()
    source: InputStream = state.get(store, src)
    sink: OutputStream = state.get(store, this)
    if sink.closed:
        return None
    chunk = source.take(min(size, 1 << 20))
    if chunk is None:
        return None
    sink.accept(chunk)
    return len(chunk)


def _ready(store: Any, this: ResourceAny) -> bool:
    pollable: Pollable = current().get(store, this)
    return time.monotonic() >= pollable.ready_time()


def _wait_until(ready_at: float) -> None:
    """Sleep until ``ready_at``; a sleep past the request's deadline is the deadline."""
    state = current()
    delay = ready_at - time.monotonic()
    if delay <= 0:
        return
    if ready_at > state.deadline:
        time.sleep(max(0.0, state.deadline - time.monotonic()))
        raise TimeoutError("component waited past its deadline")
    time.sleep(delay)


def _block(store: Any, this: ResourceAny) -> None:
    pollable: Pollable = current().get(store, this)
    _wait_until(pollable.ready_time())


def _poll(store: Any, pollables: list[ResourceAny]) -> list[int]:
    state = current()
    times = [state.get(store, p).ready_time() for p in pollables]
    if not times:
        raise HostRefusalError("poll called with no pollables")
    _wait_until(min(times))
    now = time.monotonic()
    return [i for i, at in enumerate(times) if at <= now]


def _to_debug_string(store: Any, this: ResourceAny) -> str:
    return str(current().get(store, this))


def define_io(definer: Definer) -> None:
    with definer.interface("wasi:io/error") as inst:
        define_resource(inst, "error", T_ERROR)
        define_funcs(inst, {"[method]error.to-debug-string": _to_debug_string})
    with definer.interface("wasi:io/poll") as inst:
        define_resource(inst, "pollable", T_POLLABLE)
        define_funcs(
            inst, {"[method]pollable.ready": _ready, "[method]pollable.block": _block, "poll": _poll}
        )
    with definer.interface("wasi:io/streams") as inst:
        define_resource(inst, "input-stream", T_INPUT)
        define_resource(inst, "output-stream", T_OUTPUT)
        define_funcs(
            inst,
            {
                "[method]input-stream.read": _read,
                "[method]input-stream.blocking-read": _read,
                "[method]input-stream.skip": _skip,
                "[method]input-stream.blocking-skip": _skip,
                "[method]input-stream.subscribe": _subscribe,
                "[method]output-stream.check-write": _check_write,
                "[method]output-stream.write": _write,
                "[method]output-stream.blocking-write-and-flush": _blocking_write,
                "[method]output-stream.flush": _flush,
                "[method]output-stream.blocking-flush": _flush,
                "[method]output-stream.subscribe": _subscribe,
                "[method]output-stream.write-zeroes": _write_zeroes,
                "[method]output-stream.blocking-write-zeroes-and-flush": _blocking_write_zeroes,
                "[method]output-stream.splice": _splice,
                "[method]output-stream.blocking-splice": _splice,
            },
        )
