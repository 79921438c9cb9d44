"""Test-only modules written in WAT: well-behaved probes and pathological handlers."""

from __future__ import annotations

_WASI = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env_get (param i32 i32) (result i32)))
"""

# write(ptr, len) to stdout through one iovec kept at address 16.
_WRITE = """
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
"""


def wagi_print(output: bytes, *, exit_code: int | None = None) -> str:
    """A command that prints ``output`` to stdout, then optionally calls proc_exit."""
    data = "".join(f"\\{b:02x}" for b in output)
    exit_call = f"(call $proc_exit (i32.const {exit_code}))" if exit_code is not None else ""
    return f"""(module {_WASI}
  (memory (export "memory") 1)
  (data (i32.const 1024) "{data}")
  {_WRITE}
  (func (export "_start") (call $write (i32.const 1024) (i32.const {len(output)})) {exit_call}))"""


# Prints a CGI header, then its whole environment (NUL-separated "K=V" strings), then a
# line "--stdin--" and everything it reads from stdin.
WAGI_ENV_AND_STDIN = f"""(module {_WASI}
  (memory (export "memory") 4)
  (data (i32.const 100) "content-type: text/plain\\n\\n")
  (data (i32.const 200) "\\n--stdin--\\n")
  {_WRITE}
  (func (export "_start") (local $n i32)
    (drop (call $env_sizes (i32.const 0) (i32.const 4)))
    (drop (call $env_get (i32.const 4096) (i32.const 65536)))
    (call $write (i32.const 100) (i32.const 26))
    (call $write (i32.const 65536) (i32.load (i32.const 4)))
    (call $write (i32.const 200) (i32.const 11))
    (block $done
      (loop $more
        (i32.store (i32.const 32) (i32.const 131072))
        (i32.store (i32.const 36) (i32.const 65536))
        (drop (call $fd_read (i32.const 0) (i32.const 32) (i32.const 1) (i32.const 40)))
        (local.set $n (i32.load (i32.const 40)))
        (br_if $done (i32.eqz (local.get $n)))
        (call $write (i32.const 131072) (local.get $n))
        (br $more)))))"""

WAGI_INFINITE_LOOP = f"""(module {_WASI}
  (memory (export "memory") 1)
  (func (export "_start") (loop $forever (br $forever))))"""

WAGI_UNREACHABLE = f"""(module {_WASI}
  (memory (export "memory") 1)
  (func (export "_start") unreachable))"""

WAGI_OUT_OF_BOUNDS = f"""(module {_WASI}
  (memory (export "memory") 1)
  (func (export "_start") (drop (i32.load (i32.const 0x7ffffff0)))))"""

WAGI_DIVIDE_BY_ZERO = f"""(module {_WASI}
  (memory (export "memory") 1)
  (func (export "_start") (drop (i32.div_s (i32.const 1) (i32.const 0)))))"""

# Grows memory a page at a time until refused, then aborts like a C program whose malloc
# returned NULL.
WAGI_MEMORY_HOG = f"""(module {_WASI}
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))"""

# Needs 300 pages (~19 MiB) before it runs a single instruction.
WAGI_BIG_INITIAL_MEMORY = f"""(module {_WASI}
  (memory (export "memory") 300)
  (func (export "_start")))"""


def wagi_flood(chunks: int) -> str:
    """Prints a CGI header then ``chunks`` x 64 KiB of 'x'."""
    return f"""(module {_WASI}
  (memory (export "memory") 2)
  (data (i32.const 100) "content-type: text/plain\\n\\n")
  {_WRITE}
  (func (export "_start") (local $i i32)
    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
    (call $write (i32.const 100) (i32.const 26))
    (loop $more
      (call $write (i32.const 65536) (i32.const 65536))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const {chunks}))))))"""


WAGI_NO_START = """(module (memory (export "memory") 1) (func (export "main")))"""
WAGI_START_WITH_PARAMS = """(module (memory (export "memory") 1) (func (export "_start") (param i32)))"""

WAGI_FOREIGN_IMPORT = """(module
  (import "env" "sneaky" (func))
  (memory (export "memory") 1)
  (func (export "_start")))"""

# A freestanding reactor: a bump allocator from 64 KiB up, and a handler that answers
# 200 with one header "x-echo: 1" and the request bytes as the body.
_REACTOR_ALLOC = """
  (global $next (mut i32) (i32.const 65536))
  (func (export "edge_alloc") (param $len i32) (result i32) (local $ptr i32)
    (local.set $ptr (global.get $next))
    (global.set $next (i32.add (local.get $ptr) (i32.add (local.get $len) (i32.const 7))))
    (if (i32.gt_u (global.get $next) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.div_u (i32.sub (global.get $next)
        (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1))))))
    (local.get $ptr))
"""

REACTOR_ECHO = f"""(module
  (memory (export "memory") 2)
  (data (i32.const 1000) "x-echo1")
  (global $calls (mut i32) (i32.const 0))
  {_REACTOR_ALLOC}
  (func (export "edge_handle") (param $ptr i32) (param $len i32) (result i64) (local $out i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (local.set $out (i32.add (local.get $ptr) (local.get $len)))
    (drop (memory.grow (i32.add (i32.div_u (local.get $len) (i32.const 65536)) (i32.const 1))))
    (i32.store (local.get $out) (i32.const 200))
    (i32.store offset=4 (local.get $out) (i32.const 2))
    (i32.store offset=8 (local.get $out) (local.get $len))
    (i32.store offset=12 (local.get $out) (i32.const 6))
    (i32.store offset=16 (local.get $out) (i32.const 1))
    (memory.copy (i32.add (local.get $out) (i32.const 20)) (i32.const 1000) (i32.const 7))
    ;; second header "x-calls": how many requests this instance served (always 1 when fresh)
    (i32.store offset=27 (local.get $out) (i32.const 7))
    (i32.store offset=31 (local.get $out) (i32.const 1))
    (i32.store8 offset=35 (local.get $out) (i32.const 120))
    (i32.store8 offset=36 (local.get $out) (i32.const 45))
    (i32.store8 offset=37 (local.get $out) (i32.const 99))
    (i32.store8 offset=38 (local.get $out) (i32.const 97))
    (i32.store8 offset=39 (local.get $out) (i32.const 108))
    (i32.store8 offset=40 (local.get $out) (i32.const 108))
    (i32.store8 offset=41 (local.get $out) (i32.const 115))
    (i32.store8 offset=42 (local.get $out) (i32.add (i32.const 48) (global.get $calls)))
    (memory.copy (i32.add (local.get $out) (i32.const 43)) (local.get $ptr) (local.get $len))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (i32.add (local.get $len) (i32.const 43))))))"""


def reactor_returning(packed: int, body: str = "") -> str:
    """A reactor whose edge_handle returns the constant ``packed`` (for bad-pointer tests)."""
    return f"""(module
  (memory (export "memory") 1)
  {_REACTOR_ALLOC}
  (func (export "edge_handle") (param i32 i32) (result i64) {body} (i64.const {packed})))"""


REACTOR_LOOP = reactor_returning(0, "(loop $l (br $l))")
REACTOR_TRAP = reactor_returning(0, "unreachable")
REACTOR_BAD_ALLOC = """(module
  (memory (export "memory") 1)
  (func (export "edge_alloc") (param i32) (result i32) (i32.const 0x7fff0000))
  (func (export "edge_handle") (param i32 i32) (result i64) (i64.const 0)))"""
REACTOR_WRONG_TYPES = """(module
  (memory (export "memory") 1)
  (func (export "edge_alloc") (param i64) (result i32) (i32.const 0))
  (func (export "edge_handle") (param i32 i32) (result i64) (i64.const 0)))"""


# A reactor that imports WASI and exports _initialize: _initialize sets a flag the handler
# checks (0 -> trap), and the response body is the WASI environment (NUL-separated).
REACTOR_WASI_ENV = f"""(module
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env_get (param i32 i32) (result i32)))
  (memory (export "memory") 4)
  (global $ready (mut i32) (i32.const 0))
  {_REACTOR_ALLOC}
  (func (export "_initialize") (global.set $ready (i32.const 1)))
  (func (export "edge_handle") (param i32 i32) (result i64) (local $size i32)
    (if (i32.eqz (global.get $ready)) (then unreachable))
    (drop (call $env_sizes (i32.const 0) (i32.const 4)))
    (drop (call $env_get (i32.const 1024) (i32.const 131084)))
    (local.set $size (i32.load (i32.const 4)))
    (i32.store (i32.const 131072) (i32.const 200))
    (i32.store (i32.const 131076) (i32.const 0))
    (i32.store (i32.const 131080) (local.get $size))
    (i64.or (i64.shl (i64.const 131072) (i64.const 32))
            (i64.extend_i32_u (i32.add (local.get $size) (i32.const 12))))))"""
