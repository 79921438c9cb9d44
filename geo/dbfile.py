"""A MaxMind DB file made safe to read for as long as a process runs.

Two hazards of reading the file where it lies, both seen in a running node: libmaxminddb
maps the file, so truncating it in place kills the process with SIGBUS on the next lookup;
and the C extension trusts the data section, so a damaged record can crash the process
(a map key that is not a string segfaults its converter; libmaxminddb's own checks turn
other damage into an exception). So:

- the file is read once, whole (:func:`load`), into a private sealed ``memfd`` that the C
  extension maps (:func:`open_reader`): nobody can shrink it, and it costs the same per
  lookup as mapping the file (docs/world.md, "At run time");
- before the C extension sees a database, :func:`verify` decodes every record the search
  tree points at with maxminddb's pure-Python decoder (which raises, never crashes, and
  caps depth and size) and checks the shape the C converter needs. A database with bad
  records is read with the pure-Python reader instead, where a bad record is an exception
  that :mod:`geo.lookup` turns into an unknown location.

The file's identity (device, inode, size, times) is kept so that a replaced file (an
atomic rename, or an in-place rewrite) is noticed with one ``stat``.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maxminddb
from maxminddb.decoder import Decoder

from geo.errors import GeoDatabaseError

_SEPARATOR_BYTES = 16  # zeros between the search tree and the data section
# No one (not even we) may shrink, grow or write the private copy once it is filled.
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_NOT_A_DATABASE = "is not a valid MaxMind DB file (corrupt, truncated or another format)"
# Decoding errors of a damaged record, beside maxminddb's own (the decoder indexes and
# unpacks raw bytes, and a pointer cycle ends in recursion).
RECORD_ERRORS = (
    maxminddb.InvalidDatabaseError,
    ValueError,
    IndexError,
    TypeError,
    KeyError,
    OverflowError,
    RecursionError,
    MemoryError,
)


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What changes when a file is replaced or rewritten; equal identities: the same content."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileIdentity:
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def identity(path: Path) -> FileIdentity | None:
    """The file's identity now; None when it cannot be stat'ed (removed, or a bad path)."""
    try:
        return FileIdentity.of(os.stat(path))
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`verify` found: ``bad`` of ``records`` distinct records cannot be read."""

    records: int
    bad: int
    first_error: str = ""

    @property
    def sound(self) -> bool:
        return self.bad == 0


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """One database file, read whole: its bytes, its identity then, and what they hold."""

    data: bytes
    identity: FileIdentity
    verdict: Verdict | None  # None: not verified yet (read by the pure-Python reader until it is)


def load(path: Path, *, verify_below: int | None = None) -> LoadedFile:
    """Read ``path`` whole and verify its records (only when it is smaller than
    ``verify_below`` bytes, if that is given); GeoDatabaseError when it is unusable."""
    if path.is_dir():
        raise GeoDatabaseError(path, "is a directory, not a database file")
    try:
        with path.open("rb") as file:
            before = FileIdentity.of(os.fstat(file.fileno()))
            data = file.read()
            after = FileIdentity.of(os.fstat(file.fileno()))
    except FileNotFoundError as exc:
        raise GeoDatabaseError(path, "no such file") from exc
    except OSError as exc:
        raise GeoDatabaseError(path, f"cannot open: {exc.strerror or exc}") from exc
    if before != after or len(data) != after.size:
        raise GeoDatabaseError(path, "changed while it was being read (being written?)")
    verdict = verify(data, path) if verify_below is None or len(data) < verify_below else None
    return LoadedFile(data=data, identity=after, verdict=verdict)


def verify(data: bytes, path: Path) -> Verdict:
    """Decode every record the search tree points at, once each; count the bad ones.

    Raises GeoDatabaseError when the file is no database at all (no metadata, a search
    tree longer than the file): that is refused, whereas bad records are survivable.
    """
    try:
        reader = maxminddb.Reader(io.BytesIO(data), maxminddb.MODE_FD)
    except (*RECORD_ERRORS, UnicodeDecodeError) as exc:
        raise GeoDatabaseError(path, _NOT_A_DATABASE) from exc
    metadata = reader.metadata()
    reader.close()
    node_count, tree_size = metadata.node_count, metadata.search_tree_size
    decoder = Decoder(data, tree_size + _SEPARATOR_BYTES)
    pointers = _pointers(data, node_count, metadata.record_size)
    bad, first_error = 0, ""
    for pointer in pointers:
        offset = pointer - node_count + tree_size
        try:
            if offset >= len(data):
                raise maxminddb.InvalidDatabaseError("search tree points past the end of the file")
            record, _ = decoder.decode(offset)
            _check_shape(record)
        except RECORD_ERRORS as exc:
            bad += 1
            first_error = first_error or f"record at data offset {offset}: {exc}"
    return Verdict(records=len(pointers), bad=bad, first_error=first_error)


def _pointers(data: bytes, node_count: int, record_size: int) -> set[int]:
    """Every data pointer of the search tree (record values above ``node_count``; below it
    a record is a child node, at it "no data"). ``struct`` unpacks a node per step in C:
    several times faster than slicing each record out."""
    if record_size == 24:
        pairs = struct.iter_unpack(">HBHB", data[: node_count * 6])
        values = (v for a, b, c, d in pairs for v in ((a << 8) | b, (c << 8) | d))
    elif record_size == 32:
        values = (v for (v,) in struct.iter_unpack(">I", data[: node_count * 8]))
    else:  # 28 bits: the two records share the middle byte, its high nibble the left one's
        nodes = struct.iter_unpack(">HBBHB", data[: node_count * 7])
        values = (
            v
            for a, b, mid, d, e in nodes
            for v in ((a << 8) | b | ((mid & 0xF0) << 20), ((mid & 0x0F) << 24) | (d << 8) | e)
        )
    return {value for value in values if value > node_count}


def _check_shape(value: object) -> None:
    """What the C extension's converter assumes: every map key is a string."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise TypeError(f"map key {key!r} is not a string")
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)


def open_reader(loaded: LoadedFile, path: Path) -> Any:
    """A reader over the private copy: the C extension when every record is sound, else
    maxminddb's pure-Python reader (slower, but a bad record is an exception there)."""
    if loaded.verdict is None or not loaded.verdict.sound:
        try:
            return maxminddb.Reader(io.BytesIO(loaded.data), maxminddb.MODE_FD)
        except (*RECORD_ERRORS, UnicodeDecodeError) as exc:
            raise GeoDatabaseError(path, _NOT_A_DATABASE) from exc
    try:
        with _private_copy(loaded.data) as copy:
            # The C extension (libmaxminddb), never the pure-Python fallback of MODE_AUTO.
            return maxminddb.open_database(copy, maxminddb.MODE_MMAP_EXT)
    except ValueError as exc:
        if "extension" in str(exc):
            raise GeoDatabaseError(
                path, "cannot be read: maxminddb's C extension is missing (reinstall maxminddb)"
            ) from exc
        raise GeoDatabaseError(path, _NOT_A_DATABASE) from exc
    except (OSError, maxminddb.InvalidDatabaseError) as exc:
        raise GeoDatabaseError(path, _NOT_A_DATABASE) from exc


@contextlib.contextmanager
def _private_copy(data: bytes) -> Iterator[str]:
    """A path to a copy of ``data`` that only this process holds, valid inside the block.

    A sealed memfd where Linux has one: it cannot be shrunk, grown or written, by anyone,
    so the mapping libmaxminddb makes of it can never fault. Elsewhere, an unlinked
    temporary file (nobody else can name it once the block ends).
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("edgecdn-geo", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            _write_all(fd, data)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)  # the mapping keeps the pages; the copy goes with the reader
        return
    handle, name = tempfile.mkstemp(prefix="edgecdn-geo-", suffix=".mmdb")
    try:
        _write_all(handle, data)
        yield name
    finally:
        os.close(handle)
        with contextlib.suppress(OSError):
            os.unlink(name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
