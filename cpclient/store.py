"""Where a node keeps module bytes by digest: in memory, or in a crash-safe directory."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ModuleStore(Protocol):
    """Module bytes by lower-case sha256 hex; the session lists ``digests()`` in its hello."""

    def has(self, sha256: str) -> bool: ...

    def get(self, sha256: str) -> bytes: ...

    def put(self, sha256: str, data: bytes) -> None: ...

    def digests(self) -> Iterable[str]: ...


class MemoryModuleStore:
    """Modules in a dict: for tests and for many simulated nodes in one process."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def has(self, sha256: str) -> bool:
        return sha256 in self._blobs

    def get(self, sha256: str) -> bytes:
        return self._blobs[sha256]

    def put(self, sha256: str, data: bytes) -> None:
        self._blobs[sha256] = data

    def digests(self) -> Iterable[str]:
        return sorted(self._blobs)


class DirectoryModuleStore:
    """Modules as ``<dir>/<sha256>`` files, written tmp + fsync + rename; verified when read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256

    def has(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def get(self, sha256: str) -> bytes:
        data = self._path(sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            # A corrupt file is as good as none: drop it so it is downloaded again.
            self._path(sha256).unlink(missing_ok=True)
            raise FileNotFoundError(f"module {sha256} was corrupt on disk")
        return data

    def put(self, sha256: str, data: bytes) -> None:
        target = self._path(sha256)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def digests(self) -> Iterable[str]:
        return sorted(p.name for p in self.root.iterdir() if _SHA256.fullmatch(p.name))
