"""Where a node's cache stands in the control plane's purge log.

A node tells the control plane, in each hello, the newest purge its cache has carried out
(``sequence``) and whether it holds nothing from before this session (``empty``); the
control plane sends it the purges it missed (control_plane/purge_log.py). A node whose
cache starts empty (memory only, just started) takes the log's newest sequence from the
session's parameters as its own. With a disk tier, the sequence is kept in a file beside
it, so a node restarted on a full disk tier gets what it missed while it was down.
"""

from __future__ import annotations

import logging
from pathlib import Path

from runtime.files import write_bytes_atomically

logger = logging.getLogger(__name__)

FILE_NAME = "purge-sequence"


class PurgeState:
    """The node's place in the purge log; ``file``: where it is kept (None: in memory)."""

    def __init__(self, file: Path | None = None, *, cache_empty: bool = True) -> None:
        self._file = file
        self.sequence = 0
        self.empty = cache_empty
        if file is not None:
            try:
                self.sequence = int(file.read_text(encoding="ascii").strip() or 0)
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:  # unreadable: as if never purged (a full replay)
                logger.warning("ignoring unreadable purge state %s: %s", file, exc)

    @property
    def persisted(self) -> bool:
        """Whether ``save`` writes anything (a file beside the disk tier)."""
        return self._file is not None

    def adopt(self, newest: int) -> bool:
        """A session opened with the log at ``newest``: an empty cache is as current as the log.
        True when the state changed (``save`` it)."""
        if not self.empty:
            return False
        self.empty = False  # whatever it caches from now on is newer than every logged purge
        self.sequence = max(self.sequence, newest)
        return True

    def carried_out(self, sequence: int) -> bool:
        """A purge of the log was carried out; True when the state changed (``save`` it)."""
        if sequence <= self.sequence:
            return False
        self.sequence = sequence
        return True

    def save(self) -> None:
        if self._file is not None:
            write_bytes_atomically(self._file, f"{self.sequence}\n".encode())
