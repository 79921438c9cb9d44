"""Content-addressed module blobs: ``<dir>/<sha256[:2]>/<sha256>``, written crash-safely.

A blob is written to a temporary file in the same directory, fsynced, renamed into place,
and the directory fsynced, so after a crash a blob is either complete or absent. A small
in-memory cache of recently served blobs keeps a deployment to many nodes from reading
the same file a thousand times.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections import OrderedDict
from pathlib import Path

from control_plane.errors import StoreError

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
CACHE_BYTES = 64 * 1024 * 1024


def is_sha256_hex(value: str) -> bool:
    return SHA256_HEX.fullmatch(value) is not None


class BlobStore:
    """Stores and reads module bytes by lower-case sha256 hex."""

    def __init__(self, root: Path, *, cache_bytes: int = CACHE_BYTES) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(path=str(root), reason=f"cannot create blob directory: {exc}") from exc
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0

    def path(self, sha256: str) -> Path:
        if not is_sha256_hex(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, sha256: str, data: bytes) -> None:
        """Store ``data`` (whose digest the caller checked) under ``sha256``; idempotent."""
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError("blob digest does not match its name")
        target = self.path(sha256)
        if target.is_file():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, sha256: str) -> bytes:
        """The blob's bytes; FileNotFoundError when absent."""
        cached = self._cache.get(sha256)
        if cached is not None:
            self._cache.move_to_end(sha256)
            return cached
        data = self.path(sha256).read_bytes()
        self._remember(sha256, data)
        return data

    def delete(self, sha256: str) -> None:
        dropped = self._cache.pop(sha256, None)
        if dropped is not None:
            self._cached -= len(dropped)
        self.path(sha256).unlink(missing_ok=True)

    def _remember(self, sha256: str, data: bytes) -> None:
        if len(data) > self._cache_bytes // 4:
            return
        self._cache[sha256] = data
        self._cached += len(data)
        while self._cached > self._cache_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._cached -= len(evicted)
