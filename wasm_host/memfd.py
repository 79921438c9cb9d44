"""A pool of memfds that WAGI stdout is written to."""

from __future__ import annotations

import os
import threading

PAGE = 64 * 1024


class MemfdPool:
    """Reusable memfds that WASI stdout is pointed at (by their /proc path).

    A memfd is plain memory with a file's interface: wasmtime writes the guest's stdout into
    it from the calling thread with no callback, and the host reads it back with one pread.
    Each in-flight request holds its own; ``wasi_config_set_stdout_file`` truncates on open.
    """

    def __init__(self) -> None:
        self._free: list[int] = []
        self._lock = threading.Lock()
        self._all: set[int] = set()

    def acquire(self) -> int:
        """A memfd no other request is using."""
        try:
            return self._free.pop()
        except IndexError:
            fd = os.memfd_create("wasm-stdout", os.MFD_CLOEXEC)
            with self._lock:
                self._all.add(fd)
            return fd

    def release(self, fd: int, size: int | None = None) -> None:
        """Give ``fd`` back; large contents are dropped now rather than at the next open."""
        if size is None:
            size = os.fstat(fd).st_size
        if size > PAGE:
            os.ftruncate(fd, 0)
        self._free.append(fd)

    def close(self) -> None:
        """Close every memfd this pool created."""
        with self._lock:
            fds, self._all = self._all, set()
            self._free.clear()
        for fd in fds:
            os.close(fd)
