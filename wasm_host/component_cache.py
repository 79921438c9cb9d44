"""Compile components once: ``ModuleCache``'s in-process table and checked AOT artefacts, for components.

``ComponentCache`` is a ``ModuleCache`` that loads both kinds (``load_any`` tells them apart
by the binary's preamble); the edge node and the control plane use it.

A Spin SDK component for Python is ~37 MB of wasm and takes ~20 s to compile on this
machine's two cores, but its artefact loads in ~5 ms (an mmap), so the disk cache is what
makes a component deployable at all. Artefacts sit beside the modules' ones, named
``<sha256>.component.cwasm`` so that neither kind can be mistaken for the other, with the
same trailer (engine fingerprint, digest, length, CRC-32) and the same atomic writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wasmtime.component import Component

from wasm_host.cache import CodeKind, CompiledModule, ModuleCache, Origin

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


COMPONENT: CodeKind[Component] = CodeKind(
    label="component",
    suffix=".component.cwasm",
    compile=Component,
    serialize=Component.serialize,
    deserialize_file=Component.deserialize_file,
)


class ComponentCache(ModuleCache):
    """Loads components, and modules, for one ``WasmEngine``; thread-safe; ``cache_dir=None``
    keeps memory only."""

    def load_component(self, wasm: bytes) -> CompiledComponent:
        """The compiled component for ``wasm``: from memory, from disk, or compiled now."""
        return self.load_code(wasm, COMPONENT, _compiled_component)

    def load_any(self, wasm: bytes) -> CompiledModule | CompiledComponent:
        """A component or a core module, whichever ``wasm`` is (its preamble says)."""
        return self.load_component(wasm) if is_component(wasm) else self.load(wasm)

    def load_component_file(self, path: Path) -> CompiledComponent:
        """Load the component in file ``path``."""
        return self.load_component(path.read_bytes())


def _compiled_component(digest: str, component: Component, size: int, origin: Origin) -> CompiledComponent:
    return CompiledComponent(digest=digest, component=component, size_bytes=size, origin=origin)
