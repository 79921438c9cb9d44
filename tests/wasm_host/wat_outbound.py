"""Test-only modules that call out through ``edge_http``, in WAT, one per ABI.

Both take the URL to fetch as the request body (``GET`` unless the query is ``post``) and
answer the upstream's status and body, read in 7-byte chunks; on an error they answer 502
with ``error NN: message``. ``bypass`` in the query sets the bypass-cache flag.
"""

from __future__ import annotations

_EDGE_HTTP = """
  (import "edge_http" "send"
    (func $send (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "edge_http" "status" (func $status (param i32 i32) (result i32)))
  (import "edge_http" "header_get" (func $header_get (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "edge_http" "body_read" (func $body_read (param i32 i32 i32 i32) (result i32)))
  (import "edge_http" "close" (func $close (param i32) (result i32)))
  (import "edge_http" "error_message" (func $error_message (param i32 i32 i32) (result i32)))
"""

# Shared: $fetch(url_ptr, url_len, flags) leaves at $OUT "status" (u32 at OUT) and the body
# after OUT+12, and returns the body length; on an error the status is 502 and the body is
# "error NN: message". Layout: 100 "GET", 104 "POST", 120 headers, 300 send's answer
# (handle, status, cache, size, copied), then 304 status, 308 count, 312 written reuse it;
# OUT = 131072.
_FETCH = """
  (data (i32.const 100) "GET POST")
  (data (i32.const 120) "x-probe: 1\\ncontent-type: text/plain\\n")
  (data (i32.const 200) "error ")
  (data (i32.const 220) "x-upstream")
  (func $fetch (param $url i32) (param $len i32) (param $flags i32) (param $post i32) (result i32)
    (local $err i32) (local $n i32) (local $total i32) (local $at i32)
    (local.set $err (call $send
      (select (i32.const 104) (i32.const 100) (local.get $post))
      (select (i32.const 4) (i32.const 3) (local.get $post))
      (local.get $url) (local.get $len)
      (i32.const 120) (i32.const 36)
      (local.get $url) (select (local.get $len) (i32.const 0) (local.get $post))
      (local.get $flags) (i32.const 300) (i32.const 131084) (i32.const 3)))
    (if (local.get $err)
      (then
        (i32.store (i32.const 131072) (i32.const 502))
        (memory.copy (i32.const 131084) (i32.const 200) (i32.const 6))
        (i32.store8 (i32.const 131090) (i32.add (i32.const 48) (i32.div_u (local.get $err) (i32.const 10))))
        (i32.store8 (i32.const 131091) (i32.add (i32.const 48) (i32.rem_u (local.get $err) (i32.const 10))))
        (i32.store8 (i32.const 131092) (i32.const 58))
        (i32.store8 (i32.const 131093) (i32.const 32))
        (drop (call $error_message (i32.const 131094) (i32.const 4096) (i32.const 312)))
        (return (i32.add (i32.const 10) (i32.load (i32.const 312))))))
    (drop (call $status (i32.load (i32.const 300)) (i32.const 304)))
    (i32.store (i32.const 131072) (i32.load (i32.const 304)))
    ;; send copied the body's first bytes (at most 3) to 131084; the rest in 7-byte chunks.
    (local.set $total (i32.load (i32.const 316)))
    (local.set $at (i32.add (i32.const 131084) (local.get $total)))
    (block $done
      (loop $more
        (drop (call $body_read (i32.load (i32.const 300)) (local.get $at) (i32.const 7) (i32.const 308)))
        (local.set $n (i32.load (i32.const 308)))
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $at (i32.add (local.get $at) (local.get $n)))
        (local.set $total (i32.add (local.get $total) (local.get $n)))
        (br $more)))
    (drop (call $close (i32.load (i32.const 300))))
    (local.get $total))
"""

WAGI_FETCH = f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env_get (param i32 i32) (result i32)))
  {_EDGE_HTTP}
  (memory (export "memory") 4)
  (data (i32.const 400) "content-type: text/plain\\nstatus: ")
  (data (i32.const 440) "\\n\\n")
  {_FETCH}
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "_start") (local $n i32) (local $status i32)
    (i32.store (i32.const 32) (i32.const 65536))
    (i32.store (i32.const 36) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 32) (i32.const 1) (i32.const 40)))
    (local.set $n (call $fetch (i32.const 65536) (i32.load (i32.const 40)) (i32.const 0) (i32.const 0)))
    (local.set $status (i32.load (i32.const 131072)))
    (i32.store8 (i32.const 500) (i32.add (i32.const 48) (i32.div_u (local.get $status) (i32.const 100))))
    (i32.store8 (i32.const 501)
      (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $status) (i32.const 10)) (i32.const 10))))
    (i32.store8 (i32.const 502) (i32.add (i32.const 48) (i32.rem_u (local.get $status) (i32.const 10))))
    (call $write (i32.const 400) (i32.const 33))
    (call $write (i32.const 500) (i32.const 3))
    (call $write (i32.const 440) (i32.const 2))
    (call $write (i32.const 131084) (local.get $n))))"""

# The reactor: edge_alloc always answers 65536; the body (the URL) ends the request, its
# length is the request head's 8th u32. The query's first byte 'p' makes it a POST of the
# URL itself, 'b' sets the bypass flag.
REACTOR_FETCH = f"""(module
  {_EDGE_HTTP}
  (memory (export "memory") 4)
  {_FETCH}
  (func (export "edge_alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "edge_handle") (param $ptr i32) (param $len i32) (result i64)
    (local $body i32) (local $n i32) (local $first i32)
    (local.set $body (i32.load (i32.add (local.get $ptr) (i32.const 28))))
    (local.set $first (i32.load8_u (i32.add (i32.add (local.get $ptr) (i32.const 32))
      (i32.add (i32.load (i32.add (local.get $ptr) (i32.const 4)))
               (i32.load (i32.add (local.get $ptr) (i32.const 8)))))))
    (local.set $n (call $fetch
      (i32.sub (i32.add (local.get $ptr) (local.get $len)) (local.get $body))
      (local.get $body)
      (i32.eq (local.get $first) (i32.const 98))
      (i32.eq (local.get $first) (i32.const 112))))
    (i32.store (i32.const 131076) (i32.const 0))
    (i32.store (i32.const 131080) (local.get $n))
    (i64.or (i64.shl (i64.const 131072) (i64.const 32))
            (i64.extend_i32_u (i32.add (i32.const 12) (local.get $n))))))"""

# Imports edge_http and WASI but never calls out: for the import rules.
WAGI_IMPORTS_ONLY = f"""(module
  {_EDGE_HTTP}
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")))"""

WAGI_OTHER_IMPORT = """(module
  (import "edge_http" "open_socket" (func $x (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")))"""
