"""One control plane per data directory and per port: what refuses a second one.

The port: gRPC binds with ``SO_REUSEPORT`` unless told not to, and with it a second
server on a live port shares its connections with the first. :data:`NO_PORT_SHARING` is
the server option that turns it off, and :func:`listen_error` says why a bind failed.

The data directory: two control planes on one SQLite file and one blob directory would each believe they own
the fleet (sessions, rollouts, assignment versions) and overwrite each other's state. The
lock is ``flock`` on ``<data-dir>/control-plane.lock``: the kernel drops it when the
holder's file is closed, which includes the process dying by ``kill -9``, so a restart
gets it at once and a stale file never blocks anyone. The file holds the holder's pid
(and, once it listens, its gRPC address) so that the refusal can name the other process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from control_plane.errors import ControlPlaneError, StoreError

LOCK_FILE_NAME = "control-plane.lock"
# The grpc server option: bind without SO_REUSEPORT, so a taken port fails to bind.
NO_PORT_SHARING = ("grpc.so_reuseport", 0)


class ListenError(ControlPlaneError):
    """The gRPC port cannot be bound (taken by another process, or not an address here)."""

    def __init__(self, *, target: str, reason: str) -> None:
        super().__init__(f"cannot listen on {target}: {reason}")
        self.target = target
        self.reason = reason


def listen_error(host: str, port: int) -> ListenError:
    """Why gRPC could not bind ``host:port``: grpc says only "failed to bind", so ask the OS."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            # SO_REUSEADDR as gRPC sets it: only a live listener (not TIME_WAIT) makes it fail.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return ListenError(
                target=target,
                reason="the port is in use by another process (is another control plane running?)",
            )
        return ListenError(target=target, reason=exc.strerror or str(exc))
    return ListenError(target=target, reason="gRPC could not bind it (GRPC_VERBOSITY=debug says why)")


class DataDirInUseError(ControlPlaneError):
    """Another live process holds the data directory's lock."""

    def __init__(self, *, data_dir: Path, holder: str) -> None:
        super().__init__(
            f"data directory {data_dir} is in use by another control plane ({holder}); "
            "stop it first, or give this one another --data-dir"
        )
        self.data_dir = data_dir
        self.holder = holder


def describe_holder(text: str) -> str:
    """What the lock file says about its holder, for the refusal message; never raises."""
    try:
        facts = json.loads(text)
    except ValueError:
        facts = None
    if not isinstance(facts, dict) or not isinstance(facts.get("pid"), int):
        # The holder has locked the file but not yet written it (a start racing ours).
        return "pid not yet written"
    parts = [f"pid {facts['pid']}"]
    if isinstance(facts.get("grpc"), str):
        parts.append(f"serving gRPC on {facts['grpc']}")
    return ", ".join(parts)


class DataDirLock:
    """The lock on one data directory; ``acquire`` (or ``with``) takes it or raises."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE_NAME
        self._fd: int | None = None
        self._facts: dict[str, object] = {}

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting; DataDirInUseError names the holder when it is taken."""
        try:
            # O_CLOEXEC (Python's default): a child process must not inherit and keep the lock.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(path=str(self.path), reason=f"cannot open: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirInUseError(data_dir=self.data_dir, holder=describe_holder(holder)) from exc
            raise StoreError(path=str(self.path), reason=f"cannot lock: {exc.strerror or exc}") from exc
        self._fd = fd
        self._facts = {"pid": os.getpid(), "started_at": round(time.time(), 3)}
        self._write()

    def describe(self, **facts: str) -> None:
        """Add facts (e.g. ``grpc="127.0.0.1:7000"``) that a refused second process reports."""
        self._facts.update(facts)
        self._write()

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # Closing drops the lock; the file stays (removing it could race a new holder's open).
        os.close(fd)

    def _write(self) -> None:
        if self._fd is None:
            return
        data = json.dumps(self._facts, sort_keys=True).encode() + b"\n"
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
        except OSError:
            # Only the refusal message of a second process is poorer for it; the lock holds.
            return

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _read(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    return ""
