"""Compile-validation of uploaded modules with exactly the engine configuration the nodes use.

A module the control plane accepts must compile on every node, so it is compiled here with
``wasm_host``'s engine built from the default ``EngineConfig`` (what nodes run). Compiling
takes milliseconds for a core module and up to ~20 s for a component (a Python one carries
CPython), so it runs in a worker thread, and once: the artefact is kept in ``cache_dir``
(checked like the nodes' own, ``wasm_host.cache``), so the version's fit check and, in the
local world where they share the directory, the nodes load it instead of compiling again.
Whether an upload is a core module or a component its preamble says.

An app version is checked the same way before it is stored: each module it uses is linked
under the ABI the version names (``fit_problem``), with the node's own ``create_handler``,
so a version whose wagi route points at a reactor module is refused at registration
instead of being NACKed by every node it is deployed to.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from types import TracebackType

from control_plane.errors import ModuleRejectedError
from wasm_host.component_cache import CompiledComponent, ComponentCache
from wasm_host.config import EngineConfig, Limits
from wasm_host.engine import WasmEngine
from wasm_host.errors import ModuleInvalidError, WasmHostError
from wasm_host.handler import create_handler
from wasm_host.outbound import OutboundGrant

WASM_MAGIC = b"\0asm"
# (sha256, abi) -> problem; a module's bytes never change, so neither does the answer.
FIT_MEMO_ENTRIES = 4096


class ModuleValidator:
    """Compiles modules to prove they are valid; returns the imports they declare."""

    def __init__(self, engine_config: EngineConfig | None = None, *, cache_dir: Path | None = None) -> None:
        self._engine = WasmEngine(engine_config or EngineConfig())
        self._cache = ComponentCache(self._engine, cache_dir)
        self._fits: dict[tuple[str, str, bool], str | None] = {}

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
            compiled = self._cache.load_any(data)
        except ModuleInvalidError as exc:
            raise ModuleRejectedError(
                code="module_compile_failed", reason=f"does not compile: {exc.reason}", sha256=sha256
            ) from exc
        try:
            if isinstance(compiled, CompiledComponent):
                return tuple(compiled.component.type.imports(self._engine.engine))
            return tuple(f"{imp.module}.{imp.name}" for imp in compiled.module.imports)
        finally:
            # The control plane never runs modules: keep no compiled code in memory.
            self._cache.forget(compiled.digest)

    async def validate_async(self, data: bytes, sha256: str) -> tuple[str, ...]:
        return await asyncio.to_thread(self.validate, data, sha256)

    def fit_problem(self, data: bytes, sha256: str, abi: str, *, calls_out: bool = False) -> str | None:
        """Why a node could not run ``data`` under ``abi`` (exports, imports), or None.

        Limits and environment are checked by ``manifest.rules``; this links the module the
        way ``edge_node.app.build_app`` does, with the default limits and no environment;
        ``calls_out``: the version grants it ``allowed_outbound_hosts``, so it may import
        ``edge_http`` (wasm_host.outbound).
        """
        key = (sha256, abi, calls_out)
        if key in self._fits:
            return self._fits[key]
        try:
            compiled = self._cache.load_any(data)
        except ModuleInvalidError as exc:
            return f"does not compile: {exc.reason}"
        try:
            grant = OutboundGrant.of(["http://self"]) if calls_out else None  # any grant links the same
            create_handler(
                self._engine,
                compiled,
                abi=abi,  # type: ignore[arg-type]
                limits=Limits(),
                env={},
                name="check",
                outbound=grant,
            )
            problem = None
        except (WasmHostError, ValueError) as exc:
            problem = str(exc)
        finally:
            self._cache.forget(compiled.digest)
        if len(self._fits) >= FIT_MEMO_ENTRIES:
            self._fits.clear()
        self._fits[key] = problem
        return problem

    async def fit_problem_async(
        self, data: bytes, sha256: str, abi: str, *, calls_out: bool = False
    ) -> str | None:
        return await asyncio.to_thread(
            functools.partial(self.fit_problem, data, sha256, abi, calls_out=calls_out)
        )
