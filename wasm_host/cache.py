"""Compile modules once: an in-process table plus an ahead-of-time artefact cache on disk.

Artefacts live at ``<dir>/<engine fingerprint[:32]>/<module sha256>.cwasm``, so a different
engine configuration or wasmtime version simply misses. wasmtime trusts a serialized
artefact (it is machine code: a flipped byte loads silently), so each file ends with a
trailer holding a magic, the full engine fingerprint, the module digest, the artefact's
length and CRC-32; a file that fails any check is counted as corrupt, deleted and
recompiled. CRC-32 (not a cryptographic hash) because it guards against torn writes and
bit rot, not against an attacker: whoever can write the cache directory can run code anyway,
and it hashes 230 KB in 60 us where sha256 takes 180 us.
The trailer sits at the end so that ``Module.deserialize_file`` can mmap the file as is
(ELF ignores trailing bytes): ~0.1 ms instead of ~0.3 ms for copying bytes in, and the
check hashes the mmap without reading the file into Python. Writes go to a temporary file
renamed into place, so readers never see half an artefact. Nodes of one machine may share
the directory (``edge-node --module-cache-dir``): a miss takes an exclusive ``flock`` on
``<digest>.lock`` and looks on disk again before compiling, so a module is compiled once
however many processes want it at the same moment (a 37 MB component takes ~20 s).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, cast

import wasmtime

from wasm_host.engine import WasmEngine
from wasm_host.errors import ModuleInvalidError

logger = logging.getLogger(__name__)

_MAGIC = b"EDGECWASM\x01"
_TRAILER_LEN = len(_MAGIC) + 32 * 2 + 12

Origin = Literal["compiled", "disk", "memory"]
Code = TypeVar("Code")  # wasmtime.Module, or a component
Compiled = TypeVar("Compiled")  # CompiledModule, or CompiledComponent


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledModule:
    """A module compiled for one engine; ``digest`` is the sha256 (hex) of its wasm bytes."""

    digest: str
    module: wasmtime.Module = field(repr=False, compare=False)
    size_bytes: int
    origin: Origin


@dataclass(slots=True)
class CacheStats:
    """Counters for metrics: where loads were served from, and how many artefacts were bad."""

    memory_hits: int = 0
    disk_hits: int = 0
    compiles: int = 0
    corrupt: int = 0


def module_digest(wasm: bytes) -> str:
    """The hex sha256 that names a module everywhere (cache, control plane, manifests)."""
    return hashlib.sha256(wasm).hexdigest()


@dataclass(frozen=True, slots=True)
class CodeKind(Generic[Code]):
    """What the cache does differently for core modules and for components: the artefact's
    name, and wasmtime's compile, serialize and deserialize for that kind of code."""

    label: str
    suffix: str
    compile: Callable[[wasmtime.Engine, bytes], Code]
    serialize: Callable[[Code], bytes | bytearray]
    deserialize_file: Callable[[wasmtime.Engine, str], Code]


MODULE: CodeKind[wasmtime.Module] = CodeKind(
    label="module",
    suffix=".cwasm",
    compile=wasmtime.Module,
    serialize=wasmtime.Module.serialize,
    deserialize_file=wasmtime.Module.deserialize_file,
)


class ModuleCache:
    """Loads modules for one ``WasmEngine``; thread-safe; ``cache_dir=None`` keeps memory only."""

    def __init__(self, engine: WasmEngine, cache_dir: Path | None = None) -> None:
        self.engine = engine
        self.stats = CacheStats()
        self._dir = cache_dir / engine.fingerprint[:32] if cache_dir is not None else None
        self._loaded: dict[str, Any] = {}  # digest -> CompiledModule (or a subclass's kind)
        self._lock = threading.Lock()

    def artefact_path(self, digest: str, kind: CodeKind[Any] = MODULE) -> Path | None:
        """Where the artefact for ``digest`` lives on disk (None without a cache directory)."""
        return self._dir / f"{digest}{kind.suffix}" if self._dir is not None else None

    def load_file(self, path: Path) -> CompiledModule:
        """Load the module in file ``path`` (wasm binary or WAT text)."""
        return self.load(path.read_bytes())

    def load(self, wasm: bytes) -> CompiledModule:
        """The compiled module for ``wasm``: from memory, from disk, or compiled now."""
        return self.load_code(wasm, MODULE, _compiled_module)

    def load_code(
        self,
        wasm: bytes,
        kind: CodeKind[Code],
        wrap: Callable[[str, Code, int, Origin], Compiled],
    ) -> Compiled:
        """``wasm`` compiled as ``kind`` and wrapped: from memory, from disk, or compiled now."""
        digest = module_digest(wasm)
        with self._lock:
            known = self._loaded.get(digest)
            if known is not None:
                self.stats.memory_hits += 1
                return cast("Compiled", known)
        code = self._from_disk(digest, kind)
        origin: Origin = "disk"
        if code is None:
            with self.compiling(digest):
                code = self._from_disk(digest, kind)  # compiled meanwhile by another process?
                if code is None:
                    code = self._compile(digest, wasm, kind)
                    origin = "compiled"
                    self._store(digest, code, kind)
        compiled = wrap(digest, code, len(wasm), origin)
        with self._lock:
            if origin == "disk":
                self.stats.disk_hits += 1
            else:
                self.stats.compiles += 1
            return cast("Compiled", self._loaded.setdefault(digest, compiled))

    @contextmanager
    def compiling(self, digest: str) -> Iterator[None]:
        """Hold the machine-wide lock on compiling ``digest`` (none without a cache directory)."""
        if self._dir is None:
            yield
            return
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            lock = (self._dir / f"{digest}.lock").open("a")
        except OSError as exc:  # an unwritable directory costs a duplicate compile, no more
            logger.warning("cannot lock %s for compiling: %s", self._dir, exc)
            yield
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            yield

    def forget(self, digest: str) -> None:
        """Drop the in-memory entry (the disk artefact stays for the next load)."""
        with self._lock:
            self._loaded.pop(digest, None)

    def _compile(self, digest: str, wasm: bytes, kind: CodeKind[Code]) -> Code:
        try:
            return kind.compile(self.engine.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            reason = str(exc).strip().splitlines()
            raise ModuleInvalidError(
                digest, "; ".join(line.strip() for line in reason if line.strip())
            ) from exc

    def _trailer(self, digest: str, artefact: bytes | bytearray | memoryview) -> bytes:
        return (
            _MAGIC
            + bytes.fromhex(self.engine.fingerprint)
            + bytes.fromhex(digest)
            + struct.pack("<QI", len(artefact), zlib.crc32(artefact))
        )

    def _verified(self, path: Path, digest: str) -> str | None:
        """Why the artefact at ``path`` cannot be trusted, or None when it can."""
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size <= _TRAILER_LEN:
                return f"only {size} bytes"
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    expected = self._trailer(digest, view[: size - _TRAILER_LEN])
                    if view[size - _TRAILER_LEN :] != expected:
                        return "trailer or checksum mismatch"
                finally:
                    view.release()
        return None

    def _from_disk(self, digest: str, kind: CodeKind[Code]) -> Code | None:
        path = self.artefact_path(digest, kind)
        if path is None:
            return None
        try:
            problem = self._verified(path, digest)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read %s artefact %s: %s", kind.label, path, exc)
            return None
        if problem is not None:
            self._discard(path, problem)
            return None
        try:
            return kind.deserialize_file(self.engine.engine, str(path))
        except wasmtime.WasmtimeError as exc:
            self._discard(path, str(exc).splitlines()[0])
            return None

    def _discard(self, path: Path, reason: str) -> None:
        with self._lock:
            self.stats.corrupt += 1
        logger.warning("discarding artefact %s: %s", path, reason)
        path.unlink(missing_ok=True)

    def _store(self, digest: str, code: Code, kind: CodeKind[Code]) -> None:
        path = self.artefact_path(digest, kind)
        if path is None:
            return
        artefact = kind.serialize(code)
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
            logger.warning("cannot write %s artefact %s: %s", kind.label, path, exc)


def _compiled_module(digest: str, module: wasmtime.Module, size: int, origin: Origin) -> CompiledModule:
    return CompiledModule(digest=digest, module=module, size_bytes=size, origin=origin)
