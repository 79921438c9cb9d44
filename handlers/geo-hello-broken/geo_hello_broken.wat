;; geo-hello 1.2.0's /hello: a bad release that answers every request with a 500.
;; A WAGI command (WASI preview 1): it writes its CGI answer to stdout and exits. It exists
;; so the README tour and the rollout tests can ship a version the rollout gates must catch.
;; Built by handlers/build.sh (wat2wasm); the .wasm is committed beside it.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; iovec at 0: (pointer 16, length of the answer below)
  (data (i32.const 0) "\10\00\00\00\55\00\00\00")
  (data (i32.const 16)
    "status: 500\0acontent-type: text/plain\0a\0ageo-hello 1.2.0: greeting table failed to load\0a")
  (func (export "_start")
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
