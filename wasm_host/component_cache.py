"""Compile components once: ``ModuleCache``'s in-process table and checked AOT artefacts, for components.

A Spin SDK component for Python is ~37 MB of wasm and takes ~20 s to compile on this
machine's two cores, but its artefact loads in ~5 ms (an mmap), so the disk cache is what
makes a component deployable at all. Artefacts sit beside the modules' ones, named
``<sha256>.component.cwasm`` so that neither kind can be mistaken for the other, with the
same trailer (engine fingerprint, digest, length, CRC-32) and the same atomic writes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from wasm_host.cache import CompiledModule, ModuleCache, Origin, module_digest
from wasm_host.engine import WasmEngine
from wasm_host.errors import ModuleInvalidError

logger = logging.getLogger(__name__)

# The preamble of a component binary: the wasm magic, version 0x0d and layer 1 (a core
# module has version 1, layer 0).
COMPONENT_PREAMBLE = b"\0asm\x0d\x00\x01\x00"


def is_component(wasm: bytes) -> bool:
    """True when ``wasm`` is a component binary rather than a core module."""
    return wasm[:8] == COMPONENT_PREAMBLE


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledComponent:
    """A component compiled for one engine; ``digest`` is the sha256 (hex) of its wasm bytes."""

    digest: str
    component: Component = field(repr=False, compare=False)
    size_bytes: int
    origin: Origin


class ComponentCache(ModuleCache):
    """Loads components for one ``WasmEngine``; thread-safe; ``cache_dir=None`` keeps memory only."""

    def __init__(self, engine: WasmEngine, cache_dir: Path | None = None) -> None:
        super().__init__(engine, cache_dir)
        self._components: dict[str, CompiledComponent] = {}

    def artefact_path(self, digest: str) -> Path | None:
        return self._dir / f"{digest}.component.cwasm" if self._dir is not None else None

    def load_component(self, wasm: bytes) -> CompiledComponent:
        """The compiled component for ``wasm``: from memory, from disk, or compiled now."""
        digest = module_digest(wasm)
        with self._lock:
            known = self._components.get(digest)
            if known is not None:
                self.stats.memory_hits += 1
                return known
        component = self._component_from_disk(digest)
        origin: Origin = "disk"
        if component is None:
            with self.compiling(digest):
                component = self._component_from_disk(digest)  # compiled meanwhile elsewhere?
                if component is None:
                    component = self._compile_component(digest, wasm)
                    origin = "compiled"
                    self._store_component(digest, component)
        compiled = CompiledComponent(digest=digest, component=component, size_bytes=len(wasm), origin=origin)
        with self._lock:
            if origin == "disk":
                self.stats.disk_hits += 1
            else:
                self.stats.compiles += 1
            return self._components.setdefault(digest, compiled)

    def load_any(self, wasm: bytes) -> CompiledModule | CompiledComponent:
        """A component or a core module, whichever ``wasm`` is (its preamble says)."""
        return self.load_component(wasm) if is_component(wasm) else self.load(wasm)

    def load_component_file(self, path: Path) -> CompiledComponent:
        """Load the component in file ``path``."""
        return self.load_component(path.read_bytes())

    def forget(self, digest: str) -> None:
        with self._lock:
            self._components.pop(digest, None)
        super().forget(digest)

    def _compile_component(self, digest: str, wasm: bytes) -> Component:
        try:
            return Component(self.engine.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            reason = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
            raise ModuleInvalidError(digest, "; ".join(reason)) from exc

    def _component_from_disk(self, digest: str) -> Component | None:
        path = self.artefact_path(digest)
        if path is None:
            return None
        try:
            problem = self._verified(path, digest)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read component artefact %s: %s", path, exc)
            return None
        if problem is not None:
            self._discard(path, problem)
            return None
        try:
            return Component.deserialize_file(self.engine.engine, str(path))
        except wasmtime.WasmtimeError as exc:
            self._discard(path, str(exc).splitlines()[0])
            return None

    def _store_component(self, digest: str, component: Component) -> None:
        path = self.artefact_path(digest)
        if path is None:
            return
        artefact = component.serialize()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(artefact)
                    out.write(self._trailer(digest, artefact))
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            # A read-only or full disk costs a recompile next time, never a failed load.
            logger.warning("cannot write component artefact %s: %s", path, exc)
