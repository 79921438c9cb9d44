"""Taking up database files replaced on disk, for :class:`geo.lookup.GeoLocator`.

A check costs one ``stat`` per file and runs at most every interval, from a lookup. A file
whose identity (device, inode, size, times) changed is read and verified on a background
thread, never on the caller's (an event loop's) time, and the new stack is installed with
one assignment. A file that cannot be used (truncated, half-written, removed) leaves the
database in use serving, and is tried again once it changes again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from geo import dbfile
from geo.errors import GeoDatabaseError

logger = logging.getLogger(__name__)


class OpenedFile(Protocol):
    @property
    def path(self) -> Path: ...

    @property
    def identity(self) -> dbfile.FileIdentity: ...


DatabaseT = TypeVar("DatabaseT", bound=OpenedFile)
Changed = list[tuple[int, Path, dbfile.FileIdentity | None]]


class Reloader(Generic[DatabaseT]):
    """Watches the files of a stack of databases and swaps in the ones that changed.

    ``current()`` is the stack in use, ``open_file(path)`` opens (and verifies) a database
    or raises GeoDatabaseError, ``install(stack)`` puts a new stack in use, ``on_reload(path,
    result)`` hears ``"ok"`` or ``"failed"`` for every attempt.
    """

    def __init__(
        self,
        *,
        current: Callable[[], Sequence[DatabaseT]],
        open_file: Callable[[Path], DatabaseT],
        install: Callable[[tuple[DatabaseT, ...]], None],
        on_reload: Callable[[str, str], None] | None,
    ) -> None:
        self._current = current
        self._open = open_file
        self._install = install
        self._on_reload = on_reload
        self._busy = threading.Lock()  # one reload at a time; lookups never wait for it
        self._failed: dict[Path, dbfile.FileIdentity | None] = {}  # identities we could not use
        self.closed = False

    def check(self, *, wait: bool) -> bool:
        """Take up the files that changed: before returning (``wait``) or on a thread; whether
        a new stack was installed (always False without ``wait``)."""
        if self.closed or not self._busy.acquire(blocking=wait):
            return False  # a reload is under way; its result will be seen
        changed: Changed = []
        for index, database in enumerate(self._current()):
            now = dbfile.identity(database.path)
            if now != database.identity and (
                database.path not in self._failed or self._failed[database.path] != now
            ):
                changed.append((index, database.path, now))
        if not changed:
            self._busy.release()
            return False
        if wait:
            return self._reload(changed)
        threading.Thread(target=self._reload, args=(changed,), name="geo-reload", daemon=True).start()
        return False

    def _reload(self, changed: Changed) -> bool:
        try:
            old = tuple(self._current())
            databases = list(old)
            for index, path, now in changed:
                try:
                    databases[index] = self._open(path)
                except GeoDatabaseError as exc:
                    self._failed[path] = now
                    logger.warning(
                        "geo database %s changed but cannot be used: %s; kept the one in use",
                        path,
                        exc.reason,
                    )
                    self._report(path, "failed")
                    continue
                self._failed.pop(path, None)
                logger.info("geo database %s changed on disk: reloaded", path)
                self._report(path, "ok")
            if self.closed or all(new is was for new, was in zip(databases, old, strict=True)):
                return False
            self._install(tuple(databases))
            return True
        finally:
            self._busy.release()

    def _report(self, path: Path, result: str) -> None:
        if self._on_reload is not None:
            self._on_reload(str(path), result)
