"""Tests of the disk tier (httpcache.disk): format, restart, damage, bounds, purge."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from httpcache.disk import DiskTier, decode, encode, file_name
from httpcache.model import PurgeSelector, StoredResponse


def full() -> StoredResponse:
    """An entry with every field set away from its default."""
    return StoredResponse(
        key="/a?b=1",
        status=203,
        headers=(("content-type", "text/html"), ("x-é", "ü")),
        body=b"\x00\xffbody",
        request_time=1.5,
        response_time=2.5,
        date_value=3.5,
        corrected_initial_age=4.5,
        freshness_lifetime=5.5,
        heuristic=True,
        stale_while_revalidate=6.5,
        stale_if_error=7.5,
        must_revalidate=True,
        no_cache=True,
        vary=(("accept-encoding", "gzip"),),
        tags=("t1", "t2"),
        etag='"abc"',
        last_modified="Sat, 05 Dec 2026 10:00:00 GMT",
        invalidated=True,
        edge_cache_control="max-age=10",
    )


def simple(key: str = "/k", body: bytes = b"x", **kw: object) -> StoredResponse:
    return StoredResponse(
        key=key,
        status=200,
        headers=(),
        body=body,
        request_time=0.0,
        response_time=0.0,
        date_value=0.0,
        corrected_initial_age=0.0,
        freshness_lifetime=1.0,
        **kw,  # type: ignore[arg-type]
    )


def disk(path: Path, max_bytes: int = 1_000_000) -> DiskTier:
    return DiskTier(path, max_bytes=max_bytes, max_entry_bytes=100_000)


def path_of(root: Path, e: StoredResponse) -> Path:
    name = file_name(e.key, e.vary)
    return root / name[:2] / name[2:4] / name


def test_encode_decode_every_field() -> None:
    e = full()
    assert decode(encode(e)) == e
    assert all(
        getattr(e, f.name) != f.default for f in dataclasses.fields(e) if f.default is not dataclasses.MISSING
    )


def test_round_trip_and_restart(tmp_path: Path) -> None:
    d = disk(tmp_path)
    e = full()
    assert d.put(e)
    assert d.variants(e.key) == (e,)
    assert path_of(tmp_path, e).is_file()
    again = disk(tmp_path)
    assert again.variants(e.key) == (e,)
    assert again.size_bytes == d.size_bytes
    assert again.purge(PurgeSelector(tags=("t2",)), soft=False) == 1  # tags survived
    assert disk(tmp_path).variants(e.key) == ()


def test_damaged_files_dropped_on_open(tmp_path: Path) -> None:
    d = disk(tmp_path)
    good, trunc, magic, rand = (simple(key=f"/{n}") for n in ("good", "trunc", "magic", "rand"))
    for e in (good, trunc, magic, rand):
        d.put(e)
    data = path_of(tmp_path, trunc).read_bytes()
    path_of(tmp_path, trunc).write_bytes(data[:-3])
    path_of(tmp_path, magic).write_bytes(b"XXXXXX" + path_of(tmp_path, magic).read_bytes()[6:])
    path_of(tmp_path, rand).write_bytes(bytes(range(256)) * 3)
    again = disk(tmp_path)
    assert again.damaged == 3
    assert len(again) == 1
    assert again.variants("/good") == (good,)
    for e in (trunc, magic, rand):
        assert again.variants(e.key) == ()
        assert not path_of(tmp_path, e).exists()


def test_damaged_after_open_dropped_on_read(tmp_path: Path) -> None:
    d = disk(tmp_path)
    e = simple()
    d.put(e)
    path_of(tmp_path, e).write_bytes(b"garbage")
    assert d.variants(e.key) == ()
    assert len(d) == 0
    assert d.size_bytes == 0
    assert not path_of(tmp_path, e).exists()
    d.put(e)
    data = bytearray(path_of(tmp_path, e).read_bytes())
    data[6] = 99  # another format version
    path_of(tmp_path, e).write_bytes(bytes(data))
    assert d.variants(e.key) == ()


def test_leftover_temp_files_removed(tmp_path: Path) -> None:
    d = disk(tmp_path)
    e = simple()
    d.put(e)
    tmp = path_of(tmp_path, e).with_name(".tmp-leftover")
    tmp.write_bytes(b"half")
    again = disk(tmp_path)
    assert not tmp.exists()
    assert again.variants(e.key) == (e,)


def test_disk_bound_evicts_lru(tmp_path: Path) -> None:
    one = len(encode(simple(key="/1")))
    d = disk(tmp_path, max_bytes=one * 2)
    d.put(simple(key="/1"))
    d.put(simple(key="/2"))
    d.variants("/1")
    d.put(simple(key="/3"))
    assert d.variants("/2") == ()
    assert d.variants("/1")
    assert d.variants("/3")
    assert d.evictions == 1
    assert d.size_bytes <= one * 2
    assert sum(1 for p in tmp_path.rglob("*") if p.is_file()) == 2


def test_too_large_not_stored(tmp_path: Path) -> None:
    d = DiskTier(tmp_path, max_bytes=10_000, max_entry_bytes=500)
    assert not d.put(simple(body=b"x" * 600))
    assert len(d) == 0


def test_variants_replace_remove(tmp_path: Path) -> None:
    d = DiskTier(tmp_path, max_bytes=100_000, max_entry_bytes=10_000, max_variants=2)
    es = [simple(vary=(("v", str(i)),)) for i in range(3)]
    for e in es:
        d.put(e)
    assert d.variants("/k") == (es[2], es[1])
    new = dataclasses.replace(es[1], body=b"new")
    d.replace(es[1], new)
    assert set(d.variants("/k")) == {es[2], new}
    assert d.remove_key("/k") == 2
    assert d.variants("/k") == ()
    assert len(d) == 0


def test_purge_prefix_and_soft(tmp_path: Path) -> None:
    d = disk(tmp_path)
    d.put(simple(key="/img/a", tags=("img",)))
    d.put(simple(key="/css/b"))
    assert d.purge(PurgeSelector(prefixes=("/img",)), soft=True) == 1
    assert d.variants("/img/a")[0].invalidated
    assert len(d) == 2
    assert disk(tmp_path).variants("/img/a")[0].invalidated
    assert d.purge(PurgeSelector(urls=("/css/b",)), soft=False) == 1
    assert d.purge(PurgeSelector(everything=True), soft=False) == 1
    assert len(d) == 0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["/a", "/b", "/c"]), st.integers(0, 400)), max_size=20))
def test_disk_never_exceeds_bound(puts: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        d = DiskTier(root, max_bytes=1500, max_entry_bytes=1500)
        for key, n in puts:
            d.put(simple(key=key, body=b"x" * n))
            assert d.size_bytes <= 1500
            assert d.size_bytes == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        for key in ("/a", "/b", "/c"):
            assert all(v.key == key for v in d.variants(key))
