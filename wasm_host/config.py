"""Frozen configuration values: the engine's configuration and the per-module sandbox limits."""

from __future__ import annotations

import hashlib
import json
import math
import platform
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Literal

KiB = 1024
MiB = 1024 * KiB

OptLevel = Literal["none", "speed", "speed_and_size"]
Allocator = Literal["pooling", "on-demand"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Everything that shapes the process-wide wasmtime ``Engine`` (and so its compiled code).

    The defaults are the measured choice recorded in docs/abi.md: the pooling allocator makes
    per-request instantiation cheap, and a 5 ms epoch tick bounds a deadline's overshoot to one
    tick while costing the ticker thread ~200 wake-ups a second.
    """

    epoch_tick_s: float = 0.005
    allocator: Allocator = "pooling"
    # Upper bound on instances alive at once (each request holds one); also the number of
    # memory, table and stack slots the pool reserves address space for.
    pool_total_instances: int = 1000
    # Size of one memory slot, so the largest per-module memory cap this engine accepts.
    pool_max_memory_bytes: int = 256 * MiB
    # Memory a freed slot keeps mapped and zeroes with memset rather than madvise. Measured
    # (bench/wasm_overhead.py): 0 costs C geo-hello ~30 us a request in page faults; 1 MiB
    # makes Rust's 1.1 MiB heap pay a 1 MiB memset (+25 us); 256 KiB is best for both.
    pool_keep_resident_bytes: int = 256 * KiB
    max_wasm_stack_bytes: int = 512 * KiB
    opt_level: OptLevel = "speed"
    parallel_compilation: bool = True

    def __post_init__(self) -> None:
        if not (0.0005 <= self.epoch_tick_s <= 1.0):
            raise ValueError(f"epoch_tick_s must be within [0.0005, 1], got {self.epoch_tick_s}")
        if self.allocator not in ("pooling", "on-demand"):
            raise ValueError(f"allocator must be 'pooling' or 'on-demand', got {self.allocator!r}")
        if self.pool_total_instances < 1:
            raise ValueError("pool_total_instances must be at least 1")
        if self.pool_max_memory_bytes < 64 * KiB or self.pool_max_memory_bytes % (64 * KiB):
            raise ValueError("pool_max_memory_bytes must be a positive multiple of 64 KiB")
        if self.pool_keep_resident_bytes < 0:
            raise ValueError("pool_keep_resident_bytes must not be negative")
        if self.max_wasm_stack_bytes < 64 * KiB:
            raise ValueError("max_wasm_stack_bytes must be at least 64 KiB")
        if self.opt_level not in ("none", "speed", "speed_and_size"):
            raise ValueError(f"unknown opt_level {self.opt_level!r}")

    def check_memory_limit(self, memory_bytes: int) -> None:
        """ValueError when a handler's memory cap could not fit this engine's pool slot."""
        if self.allocator == "pooling" and memory_bytes > self.pool_max_memory_bytes:
            raise ValueError(
                f"memory limit {memory_bytes} exceeds the engine's pool slot of "
                f"{self.pool_max_memory_bytes} bytes"
            )

    def fingerprint(self) -> str:
        """Hex digest naming this configuration, the wasmtime version and the host machine.

        Compiled artefacts are only valid for the exact engine that produced them, so the
        fingerprint is part of every ahead-of-time cache key.
        """
        facts = {
            "config": asdict(self),
            "wasmtime": metadata.version("wasmtime"),
            "machine": platform.machine(),
            "system": platform.system(),
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()

    def deadline_ticks(self, timeout_s: float) -> int:
        """Epoch ticks to allow so that a guest gets at least ``timeout_s`` of wall time.

        The first tick may arrive at any moment after the call starts, hence the extra one.
        """
        return math.ceil(timeout_s / self.epoch_tick_s) + 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Sandbox limits of one module: linear memory cap, CPU deadline, response size cap."""

    memory_bytes: int = 16 * MiB
    timeout_s: float = 0.1
    max_output_bytes: int = 1 * MiB

    def __post_init__(self) -> None:
        if self.memory_bytes < 64 * KiB:
            raise ValueError(f"memory_bytes must be at least one 64 KiB page, got {self.memory_bytes}")
        if not (0 < self.timeout_s <= 3600) or math.isnan(self.timeout_s):
            raise ValueError(f"timeout_s must be within (0, 3600], got {self.timeout_s}")
        if self.max_output_bytes < 1:
            raise ValueError("max_output_bytes must be positive")
