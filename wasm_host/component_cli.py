"""Host side of ``wasi:cli``, ``wasi:clocks``, ``wasi:random``, ``wasi:filesystem/preopens`` (components).

Small, fixed answers: the manifest's granted environment and no arguments; stdout and
stderr into the request's log (``ComponentState.write_log``), an empty stdin, no
terminal; no preopened directory (so no file at all); the host's clocks, and pollables
on the monotonic clock that sleep no further than the request's deadline; the OS's
randomness. See ``component_wasi`` for the resource and value conventions.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from wasmtime.component import Record, ResourceHost, Variant

from wasm_host.component_wasi import (
    T_INPUT,
    T_OUTPUT,
    T_POLLABLE,
    T_TERM_IN,
    T_TERM_OUT,
    Definer,
    GuestExitError,
    InputStream,
    OutputStream,
    Pollable,
    current,
    define_funcs,
    define_resource,
)

# wasi:cli, wasi:clocks, wasi:random ------------------------------------------------------


def _exit(store: Any, status: Variant) -> None:
    raise GuestExitError(status.tag == "ok")


def _log_stream(store: Any) -> ResourceHost:
    state = current()
    return state.own(OutputStream(state.write_log), T_OUTPUT)


def _wall_now(store: Any) -> Record:
    now = time.time_ns()
    record = Record()
    record.seconds = now // 1_000_000_000  # type: ignore[attr-defined]
    record.nanoseconds = now % 1_000_000_000  # type: ignore[attr-defined]
    return record


def _wall_resolution(store: Any) -> Record:
    record = Record()
    record.seconds = 0  # type: ignore[attr-defined]
    record.nanoseconds = 1000  # type: ignore[attr-defined]
    return record


def define_cli_clocks_random(definer: Definer) -> None:
    with definer.interface("wasi:cli/environment") as inst:
        define_funcs(
            inst,
            {
                "get-environment": lambda store: list(current().env.items()),
                "get-arguments": lambda store: [],
                "initial-cwd": lambda store: None,
            },
        )
    with definer.interface("wasi:cli/exit") as inst:
        define_funcs(inst, {"exit": _exit})
    with definer.interface("wasi:cli/stdin") as inst:
        define_funcs(inst, {"get-stdin": lambda store: current().own(InputStream(b""), T_INPUT)})
    with definer.interface("wasi:cli/stdout") as inst:
        define_funcs(inst, {"get-stdout": _log_stream})
    with definer.interface("wasi:cli/stderr") as inst:
        define_funcs(inst, {"get-stderr": _log_stream})
    with definer.interface("wasi:cli/terminal-input") as inst:
        define_resource(inst, "terminal-input", T_TERM_IN)
    with definer.interface("wasi:cli/terminal-output") as inst:
        define_resource(inst, "terminal-output", T_TERM_OUT)
    for name in ("stdin", "stdout", "stderr"):
        with definer.interface(f"wasi:cli/terminal-{name}") as inst:
            # Not a terminal: the guest's stdio is the host's log.
            define_funcs(inst, {f"get-terminal-{name}": lambda store: None})
    with definer.interface("wasi:filesystem/preopens") as inst:
        # No files: Python's runtime asks for preopens when it formats a traceback.
        define_funcs(inst, {"get-directories": lambda store: []})
    with definer.interface("wasi:clocks/monotonic-clock") as inst:
        define_funcs(
            inst,
            {
                "now": lambda store: time.monotonic_ns(),
                "resolution": lambda store: 1000,
                "subscribe-instant": lambda store, when: current().own(Pollable(when / 1e9), T_POLLABLE),
                "subscribe-duration": lambda store, nanos: current().own(
                    Pollable(time.monotonic() + nanos / 1e9), T_POLLABLE
                ),
            },
        )
    with definer.interface("wasi:clocks/wall-clock") as inst:
        define_funcs(inst, {"now": _wall_now, "resolution": _wall_resolution})
    with definer.interface("wasi:random/random") as inst:
        define_funcs(
            inst,
            {
                "get-random-bytes": lambda store, size: os.urandom(min(size, 1 << 20)),
                "get-random-u64": lambda store: int.from_bytes(os.urandom(8), "little"),
            },
        )
    with definer.interface("wasi:random/insecure") as inst:
        define_funcs(
            inst,
            {
                "get-insecure-random-bytes": lambda store, size: random.randbytes(min(size, 1 << 20)),  # noqa: S311 - "insecure" by contract
                "get-insecure-random-u64": lambda store: random.getrandbits(64),
            },
        )
    with definer.interface("wasi:random/insecure-seed") as inst:
        define_funcs(inst, {"insecure-seed": lambda store: (random.getrandbits(64), random.getrandbits(64))})
