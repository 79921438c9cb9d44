"""Tests of the memory tier and the tiered cache (httpcache.store)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from httpcache.disk import DiskTier
from httpcache.model import PurgeSelector, StoredResponse
from httpcache.store import MemoryTier, TieredCache


def resp(
    key: str = "/a", body: bytes = b"x", vary: tuple[tuple[str, str], ...] = (), **kw: object
) -> StoredResponse:
    return StoredResponse(
        key=key,
        status=200,
        headers=(("content-type", "text/plain"),),
        body=body,
        request_time=1.0,
        response_time=2.0,
        date_value=2.0,
        corrected_initial_age=0.0,
        freshness_lifetime=60.0,
        vary=vary,
        **kw,  # type: ignore[arg-type]
    )


def test_put_and_variants_most_recent_first() -> None:
    m = MemoryTier(max_bytes=10_000, max_entry_bytes=10_000)
    a = resp(vary=(("accept-encoding", "gzip"),))
    b = resp(vary=(("accept-encoding", "br"),))
    assert m.put(a)
    assert m.put(b)
    assert m.variants("/a") == (b, a)
    assert m.variants("/none") == ()
    assert len(m) == 2
    assert m.size_bytes == a.size + b.size


def test_same_vary_replaces_variant() -> None:
    m = MemoryTier(max_bytes=10_000, max_entry_bytes=10_000)
    m.put(resp(body=b"old"))
    new = resp(body=b"new")
    m.put(new)
    assert m.variants("/a") == (new,)
    assert m.size_bytes == new.size


def test_entry_too_large_not_stored() -> None:
    m = MemoryTier(max_bytes=1000, max_entry_bytes=500)
    assert not m.put(resp(body=b"x" * 600))
    assert len(m) == 0


def test_lru_eviction_by_bytes() -> None:
    one = resp(key="/1").size
    m = MemoryTier(max_bytes=one * 2, max_entry_bytes=one)
    m.put(resp(key="/1"))
    m.put(resp(key="/2"))
    m.variants("/1")  # /2 is now least recently used
    m.put(resp(key="/3"))
    assert m.variants("/2") == ()
    assert m.variants("/1")
    assert m.variants("/3")
    assert m.evictions == 1
    assert m.size_bytes <= one * 2


def test_variant_bound_drops_least_recent_variant() -> None:
    m = MemoryTier(max_bytes=100_000, max_entry_bytes=10_000, max_variants=2)
    for lang in ("en", "fr", "de"):
        m.put(resp(vary=(("accept-language", lang),)))
    assert [v.vary[0][1] for v in m.variants("/a")] == ["de", "fr"]
    assert m.evictions == 1


def test_replace_swaps_in_place() -> None:
    m = MemoryTier(max_bytes=10_000, max_entry_bytes=10_000)
    old = resp(vary=(("x", "1"),))
    other = resp(vary=(("x", "2"),))
    m.put(old)
    m.put(other)
    new = resp(vary=(("x", "1"),), body=b"fresh")
    m.replace(old, new)
    assert m.variants("/a") == (other, new)
    assert m.size_bytes == other.size + new.size


def test_remove_key() -> None:
    m = MemoryTier(max_bytes=10_000, max_entry_bytes=10_000)
    m.put(resp(vary=(("x", "1"),)))
    m.put(resp(vary=(("x", "2"),)))
    assert m.remove_key("/a") == 2
    assert m.variants("/a") == ()
    assert m.size_bytes == 0


def _filled() -> MemoryTier:
    m = MemoryTier(max_bytes=100_000, max_entry_bytes=10_000)
    m.put(resp(key="/img/a.png", tags=("img",)))
    m.put(resp(key="/img/b.png?v=2", tags=("img", "b")))
    m.put(resp(key="/css/c.css", tags=("css",)))
    return m


def test_purge_by_url_prefix_tag_everything() -> None:
    m = _filled()
    assert m.purge(PurgeSelector(urls=("/css/c.css",)), soft=False) == 1
    assert m.variants("/css/c.css") == ()
    m = _filled()
    assert m.purge(PurgeSelector(prefixes=("/img/",)), soft=False) == 2
    assert len(m) == 1
    m = _filled()
    assert m.purge(PurgeSelector(tags=("b",)), soft=False) == 1
    assert m.variants("/img/a.png")
    assert not m.variants("/img/b.png?v=2")
    assert m.purge(PurgeSelector(tags=("b",)), soft=False) == 0
    m = _filled()
    assert m.purge(PurgeSelector(everything=True), soft=False) == 3
    assert len(m) == 0
    assert m.size_bytes == 0


def test_soft_purge_marks_invalidated_and_keeps() -> None:
    m = _filled()
    assert m.purge(PurgeSelector(tags=("img",)), soft=True) == 2
    assert len(m) == 3
    assert m.variants("/img/a.png")[0].invalidated
    assert not m.variants("/css/c.css")[0].invalidated
    # Tags still indexed after the soft purge: a later hard purge by tag finds them.
    assert m.purge(PurgeSelector(tags=("img",)), soft=False) == 2


keys = st.sampled_from(["/a", "/b", "/c?q=1", "/d"])
entries = st.builds(
    lambda k, n, v, t: resp(key=k, body=b"x" * n, vary=(("v", v),), tags=t),
    keys,
    st.integers(0, 600),
    st.sampled_from(["1", "2", "3"]),
    st.lists(st.sampled_from(["t1", "t2"]), max_size=2).map(tuple),
)


@given(st.lists(entries, max_size=40), st.integers(300, 3000))
def test_memory_never_exceeds_bound(puts: list[StoredResponse], max_bytes: int) -> None:
    m = MemoryTier(max_bytes=max_bytes, max_entry_bytes=max_bytes, max_variants=2)
    for e in puts:
        m.put(e)
        assert m.size_bytes <= max_bytes
        assert m.size_bytes == sum(v.size for k in ("/a", "/b", "/c?q=1", "/d") for v in m.variants(k))
        for k in ("/a", "/b", "/c?q=1", "/d"):
            found = m.variants(k)
            assert all(v.key == k for v in found)
            assert len(found) <= 2


def test_tiered_without_disk_is_memory() -> None:
    m = MemoryTier(max_bytes=10_000, max_entry_bytes=10_000)
    t = TieredCache(m)
    e = resp()
    assert t.put(e)
    assert t.variants("/a") == (e,)
    assert t.purge(PurgeSelector(everything=True), soft=False) == 1


def test_tiered_promotes_disk_hit(tmp_path: Path) -> None:
    disk = DiskTier(tmp_path, max_bytes=100_000, max_entry_bytes=10_000)
    t = TieredCache(MemoryTier(max_bytes=100_000, max_entry_bytes=10_000), disk)
    e = resp(tags=("t",))
    t.put(e)
    t2 = TieredCache(MemoryTier(max_bytes=100_000, max_entry_bytes=10_000), disk)
    assert t2.memory.variants("/a") == ()
    assert t2.variants("/a") == (e,)
    assert t2.memory.variants("/a") == (e,)
    assert t2.purge(PurgeSelector(tags=("t",)), soft=False) == 1
    assert len(disk) == 0
    assert t2.variants("/a") == ()


def test_a_note_is_kept_only_beside_the_one_variant_it_was_made_for() -> None:
    m = MemoryTier(max_bytes=10_000, max_entry_bytes=10_000)
    a = resp()
    m.note("/a", a, "nothing stored yet")
    assert m.noted("/a") is None
    m.put(a)
    m.note("/a", resp(), "another entry")
    assert m.noted("/a") is None
    m.note("/a", a, "plan")
    assert m.noted("/a") == "plan"
    m.put(resp(vary=(("accept-language", "fr"),)))  # a second variant: no note at all
    m.note("/a", a, "plan")
    assert m.noted("/a") is None


def test_every_change_to_a_keys_variants_drops_its_note() -> None:
    def noted_after(change: str) -> object | None:
        m = MemoryTier(max_bytes=10_000, max_entry_bytes=10_000)
        a = resp()
        m.put(a)
        m.note("/a", a, "plan")
        if change == "put":
            m.put(resp(body=b"new"))
        elif change == "replace":
            m.replace(a, resp(body=b"revalidated"))
        elif change == "remove":
            m.remove_key("/a")
        elif change == "purge":
            m.purge(PurgeSelector(urls=("/a",)), soft=False)
        elif change == "soft purge":
            m.purge(PurgeSelector(everything=True), soft=True)
        elif change == "evicted":
            m.put(resp(key="/big", body=b"x" * 9_600))
        return m.noted("/a")

    for change in ("put", "replace", "remove", "purge", "soft purge", "evicted"):
        assert noted_after(change) is None, change


def test_reading_a_note_uses_its_entry_as_a_read_does() -> None:
    entry_size = resp().size
    m = MemoryTier(max_bytes=entry_size * 2, max_entry_bytes=10_000)
    a, b = resp(key="/a"), resp(key="/b")
    m.put(a)
    m.put(b)
    m.note("/a", a, "plan")
    assert m.noted("/a") == "plan"  # /a is now the most recently used: /b goes first
    m.put(resp(key="/c"))
    assert m.variants("/b") == ()
    assert m.variants("/a") == (a,)
