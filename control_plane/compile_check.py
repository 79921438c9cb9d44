"""Compile-validation of uploaded modules with exactly the engine configuration the nodes use.

A module the control plane accepts must compile on every node, so it is compiled here with
``wasm_host``'s engine built from the default ``EngineConfig`` (what nodes run). Compiling
takes milliseconds to seconds, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from control_plane.errors import ModuleRejectedError
from wasm_host.cache import ModuleCache
from wasm_host.config import EngineConfig
from wasm_host.engine import WasmEngine
from wasm_host.errors import ModuleInvalidError

WASM_MAGIC = b"\0asm"


class ModuleValidator:
    """Compiles modules to prove they are valid; returns the imports they declare."""

    def __init__(self, engine_config: EngineConfig | None = None) -> None:
        self._engine = WasmEngine(engine_config or EngineConfig())
        self._cache = ModuleCache(self._engine)

    def close(self) -> None:
        self._engine.close()

    def __enter__(self) -> ModuleValidator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def validate(self, data: bytes, sha256: str) -> tuple[str, ...]:
        """Compile ``data``; its imports as ``module.name``, or ModuleRejectedError."""
        if not data.startswith(WASM_MAGIC):
            raise ModuleRejectedError(
                code="module_not_wasm", reason="not a WebAssembly binary (no \\0asm header)", sha256=sha256
            )
        try:
            compiled = self._cache.load(data)
        except ModuleInvalidError as exc:
            raise ModuleRejectedError(
                code="module_compile_failed", reason=f"does not compile: {exc.reason}", sha256=sha256
            ) from exc
        try:
            return tuple(f"{imp.module}.{imp.name}" for imp in compiled.module.imports)
        finally:
            # The control plane never runs modules: keep no compiled code in memory.
            self._cache.forget(compiled.digest)

    async def validate_async(self, data: bytes, sha256: str) -> tuple[str, ...]:
        return await asyncio.to_thread(self.validate, data, sha256)
