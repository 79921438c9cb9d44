"""The process-wide wasmtime ``Engine``: built from an ``EngineConfig``, with its epoch ticker.

One engine per process: compiled modules, the instance pool and the epoch counter all
belong to it. Deadlines use epoch interruption (a load and compare on loop back-edges and
function entries) rather than fuel, because it costs a fraction of fuel metering and a
wall-clock deadline is what an HTTP client experiences. A daemon thread increments the epoch
every ``epoch_tick_s``; wasm calls release the GIL, so it ticks even while a guest runs on
the thread that holds the event loop.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

import wasmtime
from wasmtime import _ffi as ffi

from wasm_host.config import EngineConfig
from wasm_host.errors import EngineClosedError
from wasm_host.memfd import MemfdPool
from wasm_host.wasi_cgi import load_native_wasi

logger = logging.getLogger(__name__)


def _build_config(config: EngineConfig) -> wasmtime.Config:
    cfg = wasmtime.Config()
    cfg.epoch_interruption = True
    cfg.cranelift_opt_level = config.opt_level
    cfg.parallel_compilation = config.parallel_compilation
    cfg.max_wasm_stack = config.max_wasm_stack_bytes
    # Handlers are single-threaded WASI preview-1 programs; features that add per-instance
    # cost or host-visible sharing stay off.
    cfg.wasm_threads = False
    cfg.shared_memory = False
    if config.allocator == "pooling":
        pool = ffi.wasmtime_pooling_allocation_config_new()
        try:
            total = config.pool_total_instances
            ffi.wasmtime_pooling_allocation_config_total_core_instances_set(pool, total)
            ffi.wasmtime_pooling_allocation_config_total_memories_set(pool, total)
            ffi.wasmtime_pooling_allocation_config_total_tables_set(pool, total)
            ffi.wasmtime_pooling_allocation_config_total_stacks_set(pool, total)
            ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pool, config.pool_max_memory_bytes)
            ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(
                pool, config.pool_keep_resident_bytes
            )
            ffi.wasmtime_pooling_allocation_config_table_keep_resident_set(
                pool, config.pool_keep_resident_bytes
            )
            ffi.wasmtime_pooling_allocation_strategy_set(cfg.ptr(), pool)
        finally:
            ffi.wasmtime_pooling_allocation_config_delete(pool)
    return cfg


class WasmEngine:
    """Owns the wasmtime ``Engine`` and the thread that advances its epoch.

    Use as a context manager (or call ``close``): the ticker is a daemon thread, but stopping
    it explicitly keeps tests and shutdowns tidy.
    """

    def __init__(self, config: EngineConfig | None = None, *, native_wasi: bool = True) -> None:
        self.config = config or EngineConfig()
        self.fingerprint = self.config.fingerprint()
        self.engine = wasmtime.Engine(_build_config(self.config))
        self.stdout_pool = MemfdPool()
        # WAGI modules' WASI calls in wasm_host/wasi_cgi.c when it is built (and wanted).
        self.native_wasi = load_native_wasi() if native_wasi else None
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="wasm-epoch-ticker", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        interval = self.config.epoch_tick_s
        engine = self.engine
        while not self._stop.wait(interval):
            engine.increment_epoch()

    @property
    def closed(self) -> bool:
        """True once ``close`` ran: deadlines could no longer fire, so nothing may run."""
        return self._stop.is_set()

    def check_open(self) -> None:
        """Raise ``EngineClosedError`` when the ticker is gone."""
        if self._stop.is_set():
            raise EngineClosedError

    def deadline_ticks(self, timeout_s: float) -> int:
        """Epoch ticks that give a guest at least ``timeout_s``."""
        return self.config.deadline_ticks(timeout_s)

    def close(self) -> None:
        """Stop the epoch ticker; idempotent."""
        if not self._stop.is_set():
            self._stop.set()
            self._ticker.join()
            self.stdout_pool.close()
            if self.native_wasi is not None:
                self.native_wasi.close()
            logger.debug("wasm engine %s closed", self.fingerprint[:12])

    def __enter__(self) -> WasmEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
