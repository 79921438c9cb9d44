"""The purge request rule (``control_plane.purges.validate``) and the per-region report."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.purge_log import selects
from control_plane.purges import PurgeRequestError, _Pending, report, validate
from protos.edgecdn.v1 import cache_pb2, common_pb2


def req(**kw: object) -> cache_pb2.PurgeCacheRequest:
    return cache_pb2.PurgeCacheRequest(**kw)  # type: ignore[arg-type]


def test_nothing_selected_is_refused() -> None:
    with pytest.raises(PurgeRequestError, match="nothing to purge"):
        validate(req())
    with pytest.raises(PurgeRequestError, match="nothing to purge"):
        validate(req(soft=True, target=common_pb2.Selector(all=True)))


def test_urls_reduce_to_primary_keys() -> None:
    selector = validate(req(urls=["https://cdn.example:8443/a/b?x=1#frag", "/c?y", "/c?y"]))
    assert selector.urls == ("/a/b?x=1", "/c?y")


@pytest.mark.parametrize("url", ["ftp://x/a", "a/b", "http:///nohost", "https://x/a b"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(PurgeRequestError):
        validate(req(urls=[url]))


def test_prefixes_tags_and_counts() -> None:
    with pytest.raises(PurgeRequestError, match="start with"):
        validate(req(path_prefixes=["img/"]))
    with pytest.raises(PurgeRequestError, match="empty tag"):
        validate(req(tags=[""]))
    with pytest.raises(PurgeRequestError, match="whitespace"):
        validate(req(tags=["a b"]))
    with pytest.raises(PurgeRequestError, match="whitespace"):
        validate(req(tags=["a\x00"]))
    with pytest.raises(PurgeRequestError, match="too many"):
        validate(req(tags=[f"t{i}" for i in range(300)]))
    with pytest.raises(PurgeRequestError, match="timeout"):
        validate(req(everything=True, timeout_seconds=-1))
    selector = validate(req(path_prefixes=["/img/"], tags=["product-1"], everything=True))
    assert selector.prefixes == ("/img/",)
    assert selector.tags == ("product-1",)
    assert selector.everything


def test_selects() -> None:
    assert selects(common_pb2.Selector(), "n", "r")
    assert selects(common_pb2.Selector(all=True), "n", "r")
    assert selects(common_pb2.Selector(regions=["r"]), "n", "r")
    assert not selects(common_pb2.Selector(regions=["q"]), "n", "r")
    assert selects(common_pb2.Selector(regions=["q"], node_ids=["n"]), "n", "r")


@given(
    st.dictionaries(st.text("abc", min_size=1, max_size=3), st.sampled_from(["r1", "r2", "r3"])), st.data()
)
def test_report_accounts_for_every_node_once(regions: dict[str, str], data: st.DataObject) -> None:
    done_ids = data.draw(st.sets(st.sampled_from(sorted(regions))) if regions else st.just(set()))
    pending = _Pending(regions=regions, done=dict.fromkeys(done_ids, 2))
    rows = report(pending)
    assert [r.region for r in rows] == sorted(set(regions.values()))
    assert sum(r.nodes_targeted for r in rows) == len(regions)
    assert sum(r.nodes_done for r in rows) == len(done_ids)
    assert sum(r.entries_removed for r in rows) == 2 * len(done_ids)
    late = {n for r in rows for n in r.late_node_ids}
    assert late == set(regions) - done_ids
