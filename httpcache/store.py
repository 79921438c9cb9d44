"""In-memory storage tier of the shared HTTP cache, and the tiered front over memory and disk.

Stores only hold entries; what may be stored or served is ``policy``'s business. Entries are
keyed by ``StoredResponse.key`` with several variants per key told apart by ``vary``.
``variants`` is on every request's path, so it is one dict lookup and allocates nothing on a
miss. Eviction is LRU over variants, bounded by the total ``StoredResponse.size``.

A reader may attach a note to a key whose only variant is a given entry (``note``): the edge
node keeps there the entry's answer pre-encoded for the wire, so that a fresh hit is replayed
rather than rebuilt. Any change to the key's variants drops its note, so a note never
outlives, nor holds in memory, the entry it was made from.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

from httpcache.model import PurgeSelector, StoredResponse

_NONE: tuple[StoredResponse, ...] = ()
Vary = tuple[tuple[str, str], ...]


class Tier(Protocol):
    """The read/write API every tier (and ``TieredCache``) offers."""

    def variants(self, key: str) -> tuple[StoredResponse, ...]: ...
    def put(self, entry: StoredResponse) -> bool: ...
    def replace(self, old: StoredResponse, new: StoredResponse) -> None: ...
    def remove_key(self, key: str) -> int: ...
    def purge(self, selector: PurgeSelector, *, soft: bool) -> int: ...


def candidate_keys(
    selector: PurgeSelector, all_keys: Iterable[str], tag_index: dict[str, set[str]]
) -> set[str]:
    """Keys that may hold entries the selector covers; tags go through the index, not a scan."""
    if selector.everything:
        return set(all_keys)
    keys = set(selector.urls)
    for tag in selector.tags:
        keys |= tag_index.get(tag, set())
    if selector.prefixes:
        keys.update(k for k in all_keys if k.partition("?")[0].startswith(selector.prefixes))
    return keys


class MemoryTier:
    """LRU over variants in memory, bounded by bytes, variants per key and entry size."""

    def __init__(self, *, max_bytes: int, max_entry_bytes: int, max_variants: int = 8) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.max_variants = max_variants
        # key -> its variants, most recently stored/used first (returned as is: no copy).
        self._by_key: dict[str, tuple[StoredResponse, ...]] = {}
        # (key, vary) -> entry, least recently used first; the eviction order.
        self._lru: OrderedDict[tuple[str, Vary], StoredResponse] = OrderedDict()
        self._by_tag: dict[str, set[str]] = {}
        self._notes: dict[str, object] = {}
        self.size_bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._lru)

    def variants(self, key: str) -> tuple[StoredResponse, ...]:
        found = self._by_key.get(key)
        if found is None:
            return _NONE
        lru = self._lru
        for entry in reversed(found):  # the first ends most recent
            lru.move_to_end((key, entry.vary))
        return found

    def peek(self, key: str) -> tuple[StoredResponse, ...]:
        """``key``'s variants without using them (the eviction order is left as it is): a
        single dict read of immutable entries, so a thread other than the tier's writer may
        call it (edge_node.outbound answers a guest's fresh hit on its worker thread)."""
        return self._by_key.get(key, _NONE)

    def note(self, key: str, entry: StoredResponse, note: object) -> None:
        """Attach ``note`` to ``key`` if ``entry`` is its only variant (else nothing): kept
        until the key's variants change."""
        found = self._by_key.get(key)
        if found is not None and len(found) == 1 and found[0] is entry:
            self._notes[key] = note

    def noted(self, key: str) -> object | None:
        """The note on ``key``, its entry used (as ``variants`` uses it); None without one."""
        note = self._notes.get(key)
        if note is not None:
            self._lru.move_to_end((key, self._by_key[key][0].vary))
        return note

    def put(self, entry: StoredResponse) -> bool:
        size = entry.size
        if size > self.max_entry_bytes or size > self.max_bytes:
            return False
        key = entry.key
        self._notes.pop(key, None)
        old = self._by_key.get(key, _NONE)
        kept = tuple(v for v in old if v.vary != entry.vary)
        for gone in old:
            if gone.vary == entry.vary:
                self._forget(gone)
        self._by_key[key] = (entry, *kept)
        self._lru[(key, entry.vary)] = entry
        self._lru.move_to_end((key, entry.vary))
        self.size_bytes += size
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        while len(self._by_key[key]) > self.max_variants:
            self._drop(self._by_key[key][-1])
            self.evictions += 1
        while self.size_bytes > self.max_bytes:
            (_, victim) = next(iter(self._lru.items()))
            self._drop(victim)
            self.evictions += 1
        return True

    def replace(self, old: StoredResponse, new: StoredResponse) -> None:
        """Swap ``new`` in for ``old`` (a revalidated entry); stores ``new`` if ``old`` is gone."""
        current = self._lru.get((old.key, old.vary))
        self._notes.pop(old.key, None)
        self._notes.pop(new.key, None)
        if current is not None and (new.key, new.vary) == (old.key, old.vary):
            variants = self._by_key[old.key]
            self._by_key[old.key] = tuple(new if v is current else v for v in variants)
            self._lru[(old.key, old.vary)] = new
            self.size_bytes += new.size - current.size
            self._untag(current)
            for tag in new.tags:
                self._by_tag.setdefault(tag, set()).add(new.key)
            if new.size > self.max_entry_bytes or self.size_bytes > self.max_bytes:
                self._drop(new)
            return
        if current is not None:
            self._drop(current)
        self.put(new)

    def remove_key(self, key: str) -> int:
        variants = self._by_key.get(key, _NONE)
        for entry in variants:
            self._drop(entry)
        return len(variants)

    def purge(self, selector: PurgeSelector, *, soft: bool) -> int:
        matched = 0
        for key in candidate_keys(selector, self._by_key, self._by_tag):
            for entry in self._by_key.get(key, _NONE):
                if not selector.matches(entry):
                    continue
                matched += 1
                if not soft:
                    self._drop(entry)
                elif not entry.invalidated:
                    self.replace(entry, dataclasses.replace(entry, invalidated=True))
        return matched

    def _drop(self, entry: StoredResponse) -> None:
        self._notes.pop(entry.key, None)
        remaining = tuple(v for v in self._by_key.get(entry.key, _NONE) if v.vary != entry.vary)
        if remaining:
            self._by_key[entry.key] = remaining
        else:
            self._by_key.pop(entry.key, None)
        self._forget(entry)

    def _forget(self, entry: StoredResponse) -> None:
        gone = self._lru.pop((entry.key, entry.vary), None)
        if gone is not None:
            self.size_bytes -= gone.size
            self._untag(gone)

    def _untag(self, entry: StoredResponse) -> None:
        left = self._by_key.get(entry.key, _NONE)
        for tag in entry.tags:
            if any(tag in v.tags for v in left if v is not entry):
                continue
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del self._by_tag[tag]


class TieredCache:
    """Memory in front of an optional disk tier: read memory then disk, write through to both.

    A disk hit is promoted to memory. When memory holds some variants of a key, disk is not
    asked for the others (it would cost a file read on every hit).
    """

    def __init__(self, memory: MemoryTier, disk: Tier | None = None) -> None:
        self.memory = memory
        self.disk = disk

    def __len__(self) -> int:
        return len(self.memory)

    def variants(self, key: str) -> tuple[StoredResponse, ...]:
        found = self.memory.variants(key)
        if found or self.disk is None:
            return found
        found = self.disk.variants(key)
        for entry in reversed(found):  # keep disk's recency order in memory
            self.memory.put(entry)
        return found

    def put(self, entry: StoredResponse) -> bool:
        stored = self.memory.put(entry)
        if self.disk is not None:
            stored = self.disk.put(entry) or stored
        return stored

    def replace(self, old: StoredResponse, new: StoredResponse) -> None:
        self.memory.replace(old, new)
        if self.disk is not None:
            self.disk.replace(old, new)

    def remove_key(self, key: str) -> int:
        removed = self.memory.remove_key(key)
        if self.disk is not None:
            removed = max(removed, self.disk.remove_key(key))
        return removed

    def purge(self, selector: PurgeSelector, *, soft: bool) -> int:
        matched = self.memory.purge(selector, soft=soft)
        if self.disk is not None:
            matched = max(matched, self.disk.purge(selector, soft=soft))
        return matched
