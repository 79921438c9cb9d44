"""On-disk storage tier of the shared HTTP cache, in the manner of nginx's proxy_cache.

One file per variant, named by hashes of its key and of its vary values (``KEYHASH-VARYHASH``)
under a two-level fan-out of the key's hash (``ab/cd/abcd...-...``): every variant of a key
is in one directory, under one prefix. A file is a header (magic, format version, metadata length, body
length), a JSON metadata block holding every ``StoredResponse`` field but the body, then the
body. A file that fails to parse, has another version or holds another key is deleted and
skipped: a damaged cache must never crash the node or serve garbage.

The index (key -> files, tag -> keys, LRU order, sizes) lives in memory and is rebuilt on
open by scanning the directory (reading headers and metadata, not bodies); leftover temp
files from a crash are removed then. Access times are kept in memory only, so after a restart
the LRU order starts from the files' modification times.

Every call does blocking file I/O on at most one file per variant touched, so the edge node
may call it from a thread; it is not thread-safe itself (use one thread, or a lock).

Several processes share one directory (an edge node's workers, ``shared=True``): each write
goes to a unique temp file, is fsynced and ``os.replace``d into place, so a reader sees a
whole old or whole new file and concurrent writers of one file do not corrupt it (last
writer wins). A shared tier looks in the key's directory on every lookup (``_probe``), so a
file another process wrote is found at once. Each process's index and byte bound are its
own: the directory can hold up to ``max_bytes`` per process, and one process may evict or
purge files another still indexes (that one then finds them missing and drops them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from httpcache.model import PurgeSelector, StoredResponse
from httpcache.store import candidate_keys

MAGIC = b"ECDNHC"
VERSION = 1
_HEADER = struct.Struct(">6sBxIQ")  # magic, version, pad, metadata length, body length
TMP_PREFIX = ".tmp-"
_MAX_META = 16 * 1024 * 1024
Vary = tuple[tuple[str, str], ...]
_FIELDS = tuple(f.name for f in dataclasses.fields(StoredResponse) if f.name != "body")


class DamagedFileError(ValueError):
    """A cache file that is not a whole, current-version entry."""


def encode(entry: StoredResponse) -> bytes:
    meta = json.dumps({name: getattr(entry, name) for name in _FIELDS}, separators=(",", ":"))
    raw = meta.encode()
    return _HEADER.pack(MAGIC, VERSION, len(raw), len(entry.body)) + raw + entry.body


def _meta_to_fields(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict) or set(meta) != set(_FIELDS):
        raise DamagedFileError("metadata fields differ")
    fields = dict(meta)
    if not isinstance(meta["key"], str) or not isinstance(meta["status"], int):
        raise DamagedFileError("bad field types")
    # JSON has no tuples: restore the tuple-typed fields (and check their shape).
    fields["headers"] = tuple((str(k), str(v)) for k, v in meta["headers"])
    fields["vary"] = tuple((str(k), str(v)) for k, v in meta["vary"])
    fields["tags"] = tuple(str(t) for t in meta["tags"])
    return fields


def decode_meta(data: bytes) -> tuple[dict[str, Any], int]:
    """The metadata fields and the body's length, from the start of a file."""
    if len(data) < _HEADER.size:
        raise DamagedFileError("short header")
    magic, version, meta_len, body_len = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or meta_len > _MAX_META:
        raise DamagedFileError("bad magic or version")
    end = _HEADER.size + meta_len
    if len(data) < end:
        raise DamagedFileError("short metadata")
    try:
        meta = json.loads(data[_HEADER.size : end])
        return _meta_to_fields(meta), body_len
    except (ValueError, TypeError, KeyError) as exc:
        raise DamagedFileError(str(exc)) from exc


def decode(data: bytes) -> StoredResponse:
    fields, body_len = decode_meta(data)
    meta_len = _HEADER.unpack_from(data)[2]
    start = _HEADER.size + meta_len
    if len(data) != start + body_len:
        raise DamagedFileError("body length differs")
    try:
        return StoredResponse(body=data[start:], **fields)
    except TypeError as exc:
        raise DamagedFileError(str(exc)) from exc


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def file_name(key: str, vary: Vary) -> str:
    return f"{key_hash(key)}-{hashlib.sha256(json.dumps(vary).encode()).hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class _Meta:
    key: str
    vary: Vary
    tags: tuple[str, ...]
    size: int  # bytes on disk


class DiskTier:
    """Files on disk, LRU over variants bounded by bytes on disk; same API as ``MemoryTier``."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        max_entry_bytes: int,
        max_variants: int = 8,
        shared: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.shared = shared
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.max_variants = max_variants
        self._lru: OrderedDict[str, _Meta] = OrderedDict()  # file name, least recent first
        self._by_key: dict[str, list[str]] = {}  # key -> file names, most recent first
        self._by_tag: dict[str, set[str]] = {}
        self.size_bytes = 0
        self.evictions = 0
        self.damaged = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._scan()

    def __len__(self) -> int:
        return len(self._lru)

    def _path(self, name: str) -> Path:
        return self.directory / name[:2] / name[2:4] / name

    def _scan(self) -> None:
        found: list[tuple[float, str, _Meta]] = []
        for path in self.directory.glob("*/*/*"):
            if path.name.startswith(TMP_PREFIX):
                _unlink(path)  # a write cut short by a crash
                continue
            read = self._read_meta(path)
            if read is not None:
                found.append((read[1], path.name, read[0]))
        for _, name, meta in sorted(found, key=lambda t: t[0]):
            self._index(name, meta)
        self._evict()

    def _read_meta(self, path: Path) -> tuple[_Meta, float] | None:
        """A file's index entry and modification time; None (and the file deleted) if damaged."""
        try:
            with path.open("rb") as f:
                head = f.read(_HEADER.size)
                meta_len = _HEADER.unpack(head)[2] if len(head) == _HEADER.size else 0
                fields, body_len = decode_meta(head + f.read(min(meta_len, _MAX_META)))
                st = os.fstat(f.fileno())
            if st.st_size != _HEADER.size + meta_len + body_len:
                raise DamagedFileError("length differs")
            meta = _Meta(fields["key"], fields["vary"], fields["tags"], st.st_size)
            if file_name(meta.key, meta.vary) != path.name:
                raise DamagedFileError("misplaced")
        except FileNotFoundError:
            return None  # gone meanwhile (another process evicted it)
        except (OSError, DamagedFileError, struct.error):
            self.damaged += 1
            _unlink(path)
            return None
        return meta, st.st_mtime

    def _probe(self, key: str) -> None:
        """Index the files of ``key`` other processes wrote since this one looked."""
        prefix = f"{key_hash(key)}-"
        try:
            names = os.listdir(self._path(prefix).parent)
        except OSError:
            return  # no directory yet: nothing stored under this key
        for name in names:
            if name.startswith(prefix) and name not in self._lru:
                read = self._read_meta(self._path(name))
                if read is not None and read[0].key == key:
                    self._index(name, read[0])
        self._evict()

    def _index(self, name: str, meta: _Meta) -> None:
        self._lru[name] = meta
        self._lru.move_to_end(name)
        self.size_bytes += meta.size
        names = self._by_key.setdefault(meta.key, [])
        names.insert(0, name)
        for tag in meta.tags:
            self._by_tag.setdefault(tag, set()).add(meta.key)

    def _unindex(self, name: str) -> _Meta | None:
        meta = self._lru.pop(name, None)
        if meta is None:
            return None
        self.size_bytes -= meta.size
        names = self._by_key.get(meta.key, [])
        if name in names:
            names.remove(name)
        if not names:
            self._by_key.pop(meta.key, None)
        for tag in meta.tags:
            if any(tag in self._lru[n].tags for n in names):
                continue
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(meta.key)
                if not keys:
                    del self._by_tag[tag]
        return meta

    def _delete(self, name: str) -> None:
        self._unindex(name)
        _unlink(self._path(name))

    def _evict(self) -> None:
        while self.size_bytes > self.max_bytes and self._lru:
            self._delete(next(iter(self._lru)))
            self.evictions += 1

    def _read(self, name: str) -> StoredResponse | None:
        meta = self._lru[name]
        try:
            entry = decode(self._path(name).read_bytes())
        except FileNotFoundError:
            self._unindex(name)  # evicted or purged by another process
            return None
        except (OSError, DamagedFileError, struct.error):
            self.damaged += 1
            self._delete(name)
            return None
        if (entry.key, entry.vary) != (meta.key, meta.vary):
            self.damaged += 1
            self._delete(name)
            return None
        return entry

    def holds(self, key: str) -> bool:
        """Whether any variant of ``key`` may be on disk, from the index alone (a shared tier
        may hold any: another process may have written it)."""
        return self.shared or key in self._by_key

    def variants(self, key: str) -> tuple[StoredResponse, ...]:
        if self.shared:
            self._probe(key)
        names = self._by_key.get(key)
        if names is None:
            return ()
        found = []
        for name in list(names):
            entry = self._read(name)
            if entry is not None:
                found.append(entry)
        for name in reversed(names):  # the most recently stored ends most recently used
            self._lru.move_to_end(name)
        return tuple(found)

    def put(self, entry: StoredResponse) -> bool:
        data = encode(entry)
        if len(data) > self.max_entry_bytes or len(data) > self.max_bytes:
            return False
        name = file_name(entry.key, entry.vary)
        path = self._path(name)
        try:
            _write_atomically(path, data)
        except OSError:
            return False  # a full or broken disk loses the entry, not the request
        self._unindex(name)
        self._index(name, _Meta(entry.key, entry.vary, entry.tags, len(data)))
        names = self._by_key[entry.key]
        while len(names) > self.max_variants:
            self._delete(names[-1])
            self.evictions += 1
        self._evict()
        return name in self._lru

    def replace(self, old: StoredResponse, new: StoredResponse) -> None:
        if (old.key, old.vary) != (new.key, new.vary):
            self._delete(file_name(old.key, old.vary))
        self.put(new)

    def remove_key(self, key: str) -> int:
        names = list(self._by_key.get(key, []))
        for name in names:
            self._delete(name)
        return len(names)

    def purge(self, selector: PurgeSelector, *, soft: bool) -> int:
        matched = 0
        for key in candidate_keys(selector, self._by_key, self._by_tag):
            for name in list(self._by_key.get(key, [])):
                meta = self._lru.get(name)  # a soft purge's rewrite may have evicted it
                if meta is None or not _covers(selector, meta):
                    continue
                matched += 1
                if not soft:
                    self._delete(name)
                    continue
                entry = self._read(name)
                if entry is not None and not entry.invalidated:
                    self.put(dataclasses.replace(entry, invalidated=True))
        return matched


def _covers(selector: PurgeSelector, meta: _Meta) -> bool:
    """``PurgeSelector.matches`` from the index alone, without reading the file."""
    if selector.everything or meta.key in selector.urls:
        return True
    if selector.prefixes and meta.key.partition("?")[0].startswith(selector.prefixes):
        return True
    return bool(selector.tags) and not set(selector.tags).isdisjoint(meta.tags)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        _unlink(tmp)
        raise


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
