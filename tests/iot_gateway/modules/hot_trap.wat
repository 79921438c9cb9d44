;; A telemetry module that works until it sees a reading of 20 or more: then it traps.
;; In a cool region it passes the gateway's trial and starts its probation; a heat wave
;; then breaks it, and the gateway must roll back by itself (tests/iot_gateway/test_ota.py).
;; Compiled by the tests with wasmtime's WAT support.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (data (i32.const 64) "content-type: application/json\0a\0a{\"ok\":true}\0a")
  (func $digit (param $c i32) (param $low i32) (result i32)
    (i32.and (i32.ge_u (local.get $c) (local.get $low)) (i32.le_u (local.get $c) (i32.const 0x39))))
  (func (export "_start")
    (local $n i32) (local $total i32) (local $i i32)
    (block $done
      (loop $more
        (i32.store (i32.const 16) (i32.add (i32.const 1024) (local.get $total)))
        (i32.store (i32.const 20) (i32.const 65536))
        (drop (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 24)))
        (local.set $n (i32.load (i32.const 24)))
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $total (i32.add (local.get $total) (local.get $n)))
        (br_if $done (i32.gt_u (local.get $total) (i32.const 131072)))
        (br $more)))
    (local.set $i (i32.const 1024))
    (block $end
      (loop $scan
        (br_if $end (i32.gt_u (i32.add (local.get $i) (i32.const 10)) (i32.add (i32.const 1024) (local.get $total))))
        ;; the 8 bytes "value": read as one little-endian i64
        (if (i64.eq (i64.load (local.get $i)) (i64.const 0x3a2265756c617622))
          (then
            (if (i32.and (call $digit (i32.load8_u offset=8 (local.get $i)) (i32.const 0x32))
                         (call $digit (i32.load8_u offset=9 (local.get $i)) (i32.const 0x30)))
              (then unreachable))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 44))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
