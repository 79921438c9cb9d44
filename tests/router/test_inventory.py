"""The edge inventory: ``--edge`` flags, the edges file, the control plane's nodes, replacement."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.world import World, load_world
from protos.edgecdn.v1 import common_pb2, nodes_pb2
from router.errors import InventoryError
from router.inventory import (
    DEFAULT_CAPACITY_RPS,
    EdgeEntry,
    Inventory,
    check_url,
    entries_from_control_plane,
    follow_edges_file,
    parse_edge_flags,
    read_edges_file,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORLD: World = load_world(REPO_ROOT / "deploy" / "local" / "world.toml")
REGION_IDS: tuple[str, ...] = tuple(region.id for region in WORLD.regions)


# --edge flags.


def test_flags_name_nodes_by_letter_per_region_in_flag_order() -> None:
    entries = parse_edge_flags(
        [
            "us-east-1=http://127.0.0.1:8001",
            "eu-central-1=http://127.0.0.1:8002/",
            "us-east-1=http://127.0.0.1:8003",
        ],
        WORLD,
    )
    assert [(e.node_id, e.region, e.url) for e in entries] == [
        ("us-east-1-a", "us-east-1", "http://127.0.0.1:8001"),
        ("eu-central-1-a", "eu-central-1", "http://127.0.0.1:8002"),  # trailing slash dropped
        ("us-east-1-b", "us-east-1", "http://127.0.0.1:8003"),
    ]
    assert all(e.source == "flag" and e.capacity_rps == DEFAULT_CAPACITY_RPS for e in entries)
    assert all(e.reported_utilization == 0.0 for e in entries)


def test_flags_with_node_ids() -> None:
    entries = parse_edge_flags(
        ["ap-northeast-2/seoul-1=http://127.0.0.1:9001", "ap-northeast-2/seoul-2=http://localhost:9002"],
        WORLD,
    )
    assert [(e.node_id, e.region, e.url) for e in entries] == [
        ("seoul-1", "ap-northeast-2", "http://127.0.0.1:9001"),
        ("seoul-2", "ap-northeast-2", "http://localhost:9002"),
    ]


def test_no_flags_no_nodes() -> None:
    assert parse_edge_flags([], WORLD) == ()


@pytest.mark.parametrize(
    "value",
    ["us-east-1", "us-east-1 http://127.0.0.1:1", "=http://127.0.0.1:1", "us-east-1=", ""],
)
def test_a_flag_without_region_and_url_says_the_expected_form(value: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_edge_flags([value], WORLD)
    assert caught.value.message == f"--edge {value}: expected REGION=URL or REGION/NODE_ID=URL"
    assert caught.value.kind == "bad_inventory"


def test_an_unknown_region_lists_the_known_ones() -> None:
    with pytest.raises(InventoryError) as caught:
        parse_edge_flags(["mars-north-1=http://127.0.0.1:1"], WORLD)
    message = caught.value.message
    assert message.startswith("--edge mars-north-1=http://127.0.0.1:1: unknown region 'mars-north-1'")
    assert all(region in message for region in REGION_IDS)


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:8080",
        "ftp://127.0.0.1:21",
        "http://127.0.0.1",  # no port
        "http://:8080",  # no host
        "http:///path",
        "unix:/tmp/edge.sock",
    ],
)
def test_a_bad_url_shows_what_a_good_one_looks_like(url: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_edge_flags([f"us-east-1={url}"], WORLD)
    assert caught.value.message == (
        f"--edge us-east-1={url}: {url!r} is not an edge node URL like http://127.0.0.1:8080"
    )


BAD_PORT_URLS = ["http://127.0.0.1:99999", "http://127.0.0.1:http", "http://[::1:8080"]


@pytest.mark.parametrize("url", BAD_PORT_URLS)
def test_a_bad_port_is_an_inventory_error(url: str) -> None:
    with pytest.raises(InventoryError, match="is not an edge node URL"):
        parse_edge_flags([f"us-east-1={url}"], WORLD)


@pytest.mark.parametrize(
    "flags",
    [
        ["us-east-1/x=http://127.0.0.1:1", "eu-central-1/x=http://127.0.0.1:2"],
        ["us-east-1=http://127.0.0.1:1", "us-east-1/us-east-1-a=http://127.0.0.1:2"],
        # An explicit id takes a letter too, so the second default is -b: and -b is taken.
        ["us-east-1/us-east-1-b=http://127.0.0.1:1", "us-east-1=http://127.0.0.1:2"],
    ],
)
def test_duplicate_node_ids_are_refused(flags: list[str]) -> None:
    with pytest.raises(InventoryError, match=r"^edge node \S+ is listed twice$"):
        parse_edge_flags(flags, WORLD)


def test_more_than_26_unnamed_nodes_in_a_region_must_be_named() -> None:
    flags = [f"us-east-1=http://127.0.0.1:{8000 + i}" for i in range(26)]
    entries = parse_edge_flags(flags, WORLD)
    assert entries[-1].node_id == "us-east-1-z"
    with pytest.raises(InventoryError, match="name nodes"):
        parse_edge_flags([*flags, "us-east-1=http://127.0.0.1:9999"], WORLD)
    named = parse_edge_flags([*flags, "us-east-1/extra=http://127.0.0.1:9999"], WORLD)
    assert named[-1].node_id == "extra"


@st.composite
def good_flags(draw: st.DrawFn) -> list[tuple[str, str | None, str]]:
    """(region, node id or None, url) triples that are valid together."""
    count = draw(st.integers(min_value=0, max_value=12))
    triples: list[tuple[str, str | None, str]] = []
    for index in range(count):
        region = draw(st.sampled_from(REGION_IDS))
        named = draw(st.booleans())
        node_id = f"node{index}" if named else None
        host = draw(st.sampled_from(["127.0.0.1", "localhost", "edge.example", "[::1]"]))
        port = draw(st.integers(min_value=1, max_value=65535))
        path = draw(st.sampled_from(["", "/"]))
        triples.append((region, node_id, f"http://{host}:{port}{path}"))
    return triples


@settings(max_examples=200, deadline=None)
@given(triples=good_flags())
def test_good_flags_round_trip(triples: list[tuple[str, str | None, str]]) -> None:
    flags = [
        f"{region}/{node_id}={url}" if node_id else f"{region}={url}" for region, node_id, url in triples
    ]
    entries = parse_edge_flags(flags, WORLD)
    assert len(entries) == len(triples)
    letters: dict[str, int] = {}
    for entry, (region, node_id, url) in zip(entries, triples, strict=True):
        index = letters.get(region, 0)
        letters[region] = index + 1
        assert entry.region == region
        assert entry.url == url.rstrip("/")
        assert entry.node_id == (node_id or f"{region}-{string.ascii_lowercase[index]}")
    assert len({e.node_id for e in entries}) == len(entries)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.text(alphabet=st.characters(exclude_characters=":["), max_size=40), max_size=4))
def test_any_other_flag_text_is_an_inventory_error(values: list[str]) -> None:
    # Without ':' no value is a URL with a port, so every non-empty list is refused, clearly.
    if not values:
        assert parse_edge_flags(values, WORLD) == ()
        return
    with pytest.raises(InventoryError) as caught:
        parse_edge_flags(values, WORLD)
    assert caught.value.message


def test_check_url_takes_base_urls_and_strips_trailing_slashes() -> None:
    assert check_url("http://127.0.0.1:80/", where="x") == "http://127.0.0.1:80"
    assert check_url("http://edge.example:8080", where="x") == "http://edge.example:8080"
    with pytest.raises(InventoryError, match=r"^somewhere: 'http://h' is not"):
        check_url("http://h", where="somewhere")
    # The router speaks plain HTTP/1.1 to nodes, and a request's own path goes on as it is.
    with pytest.raises(InventoryError, match="is not an edge node URL"):
        check_url("https://edge.example:443", where="x")
    with pytest.raises(InventoryError, match="nothing after the port"):
        check_url("http://edge.example:80/a/b", where="x")


# --edges-file.


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_edges_file_in_the_world_json_shape(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "world.json",
        {
            "seed": 1,
            "edge_nodes": [
                {"node_id": "seoul-a", "region": "ap-northeast-2", "url": "http://127.0.0.1:9001/", "pid": 7},
                {
                    "node_id": "tokyo-a",
                    "region": "ap-northeast-1",
                    "url": "http://127.0.0.1:9002",
                    "capacity_rps": 250,
                },
            ],
            "gateways": [],
        },
    )
    entries = read_edges_file(path, WORLD)
    assert entries == (
        EdgeEntry(node_id="seoul-a", region="ap-northeast-2", url="http://127.0.0.1:9001", source="file"),
        EdgeEntry(
            node_id="tokyo-a",
            region="ap-northeast-1",
            url="http://127.0.0.1:9002",
            capacity_rps=250.0,
            source="file",
        ),
    )


def test_an_empty_edge_list_is_fine(tmp_path: Path) -> None:
    assert read_edges_file(write_json(tmp_path / "e.json", {"edge_nodes": []}), WORLD) == ()


def test_a_missing_edges_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(InventoryError) as caught:
        read_edges_file(path, WORLD)
    assert caught.value.message == f"--edges-file {path}: no such file"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        "[]",
        '"edge_nodes"',
        "42",
        "{}",
        '{"nodes": []}',
        '{"edge_nodes": {"node_id": "a"}}',
        '{"edge_nodes": null}',
    ],
)
def test_a_file_that_is_not_an_edge_list(tmp_path: Path, text: str) -> None:
    path = tmp_path / "edges.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError, match=r"^--edges-file .*: not an edge list \(.+\)$"):
        read_edges_file(path, WORLD)


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "edges.json"
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(InventoryError, match="not an edge list"):
        read_edges_file(path, WORLD)


def test_a_directory_is_not_an_edges_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not an edge list"):
        read_edges_file(tmp_path, WORLD)


GOOD = {"node_id": "a", "region": "us-east-1", "url": "http://127.0.0.1:1"}


@pytest.mark.parametrize(
    "item",
    [
        {"region": "us-east-1", "url": "http://127.0.0.1:1"},
        {"node_id": "a", "url": "http://127.0.0.1:1"},
        {"node_id": "a", "region": "us-east-1"},
        {**GOOD, "capacity_rps": "lots"},
        {**GOOD, "capacity_rps": None},
        "a=http://127.0.0.1:1",
        ["a", "us-east-1", "http://127.0.0.1:1"],
        None,
    ],
)
def test_an_incomplete_item_names_its_index(tmp_path: Path, item: Any) -> None:
    path = write_json(tmp_path / "edges.json", {"edge_nodes": [GOOD, item]})
    with pytest.raises(InventoryError) as caught:
        read_edges_file(path, WORLD)
    assert caught.value.message.startswith(
        f"--edges-file {path}: edge_nodes[1]: needs node_id, region and url ("
    )


def test_an_unknown_region_in_the_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "edges.json", {"edge_nodes": [{**GOOD, "region": "moon-1"}]})
    with pytest.raises(InventoryError, match=r"edge_nodes\[0\]: unknown region 'moon-1' \(the world has"):
        read_edges_file(path, WORLD)


def test_a_bad_url_in_the_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "edges.json", {"edge_nodes": [{**GOOD, "url": "127.0.0.1:1"}]})
    with pytest.raises(InventoryError, match=r"edge_nodes\[0\]: '127.0.0.1:1' is not an edge node URL"):
        read_edges_file(path, WORLD)


@pytest.mark.parametrize("url", BAD_PORT_URLS)
def test_a_bad_port_in_the_file_is_an_inventory_error(tmp_path: Path, url: str) -> None:
    path = write_json(tmp_path / "edges.json", {"edge_nodes": [{**GOOD, "url": url}]})
    with pytest.raises(InventoryError, match=r"edge_nodes\[0\]"):
        read_edges_file(path, WORLD)


def test_duplicate_ids_in_the_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "edges.json", {"edge_nodes": [GOOD, {**GOOD, "url": "http://127.0.0.1:2"}]})
    with pytest.raises(InventoryError, match=r"^edge node a is listed twice$"):
        read_edges_file(path, WORLD)


@pytest.mark.parametrize("capacity", [0, -100, math.nan, math.inf])
def test_a_capacity_must_be_positive_and_finite(tmp_path: Path, capacity: float) -> None:
    path = tmp_path / "edges.json"
    # json.dumps writes NaN and Infinity, which json.loads (and so the router) accepts.
    path.write_text(json.dumps({"edge_nodes": [{**GOOD, "capacity_rps": capacity}]}), encoding="utf-8")
    with pytest.raises(InventoryError, match="capacity_rps"):
        read_edges_file(path, WORLD)


async def test_follow_edges_file_keeps_the_last_good_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "edges.json"
    inventory = Inventory()
    stop = asyncio.Event()

    async def until(condition: Any) -> None:
        async with asyncio.timeout(5):
            while not condition():  # noqa: ASYNC110 - the follower has no event to wait on
                await asyncio.sleep(0.01)

    async with asyncio.TaskGroup() as group:
        group.create_task(follow_edges_file(path, WORLD, inventory, stop, poll_s=0.01), name="follow")
        write_json(path, {"edge_nodes": [GOOD]})
        await until(lambda: set(inventory.entries) == {"a"})
        with caplog.at_level(logging.WARNING, logger="router.inventory"):
            path.write_text("{broken", encoding="utf-8")
            await until(lambda: "keeping the previous edge list" in caplog.text)
        assert set(inventory.entries) == {"a"}
        write_json(path, {"edge_nodes": [{**GOOD, "node_id": "b", "url": "http://127.0.0.1:22"}]})
        await until(lambda: set(inventory.entries) == {"b"})
        stop.set()


# The control plane's nodes.


def info(
    node_id: str,
    *,
    region: str = "eu-central-1",
    address: str = "http://127.0.0.1:7000",
    status: nodes_pb2.NodeStatus.ValueType = nodes_pb2.NODE_STATUS_READY,
    capacity_rps: float = 0.0,
    utilization: float | None = None,
    vouched: bool = True,
) -> nodes_pb2.NodeInfo:
    message = nodes_pb2.NodeInfo(
        node_id=node_id,
        region=region,
        address=address,
        status=status,
        capacity_rps=capacity_rps,
        vouched=vouched,
    )
    if utilization is not None:
        message.load.CopyFrom(common_pb2.Load(utilization=utilization, requests_per_second=10.0))
    return message


def test_control_plane_nodes_become_entries() -> None:
    nodes = {
        "z": info("z", address="http://127.0.0.1:7001/", capacity_rps=800.0, utilization=0.75),
        "a": info("a", region="sa-east-1", status=nodes_pb2.NODE_STATUS_UNREACHABLE),
        "m": info("m", status=nodes_pb2.NODE_STATUS_DISCONNECTED, utilization=1.25),
        "u": info("u", status=nodes_pb2.NODE_STATUS_UNSPECIFIED),
    }
    entries = entries_from_control_plane(nodes, WORLD)
    assert entries == (
        EdgeEntry(
            node_id="a",
            region="sa-east-1",
            url="http://127.0.0.1:7000",
            capacity_rps=DEFAULT_CAPACITY_RPS,
            source="unreachable",
        ),
        EdgeEntry(
            node_id="m",
            region="eu-central-1",
            url="http://127.0.0.1:7000",
            reported_utilization=1.25,
            source="disconnected",
        ),
        EdgeEntry(
            node_id="u",
            region="eu-central-1",
            url="http://127.0.0.1:7000",
            source="unspecified",
        ),
        EdgeEntry(
            node_id="z",
            region="eu-central-1",
            url="http://127.0.0.1:7001",
            capacity_rps=800.0,
            reported_utilization=0.75,
            source="ready",
        ),
    )


def test_nodes_the_control_plane_does_not_vouch_for_are_never_routed_to() -> None:
    # A record the control plane keeps without a credential that may be it (a rogue's claim
    # from before per-node tokens, a revoked node), however ready and big it says it is.
    nodes = {
        "eu-central-1-z": info(
            "eu-central-1-z", address="http://127.0.0.1:7009", capacity_rps=1e9, vouched=False
        ),
        "eu-central-1-a": info("eu-central-1-a"),
    }
    entries = entries_from_control_plane(nodes, WORLD)
    assert [entry.node_id for entry in entries] == ["eu-central-1-a"]


@given(st.lists(st.tuples(st.sampled_from(REGION_IDS), st.booleans()), max_size=12))
def test_entries_are_exactly_the_vouched_nodes(flags: list[tuple[str, bool]]) -> None:
    nodes = {
        f"n{i}": info(f"n{i}", region=region, address=f"http://127.0.0.1:{7000 + i}", vouched=vouched)
        for i, (region, vouched) in enumerate(flags)
    }
    routed = {entry.node_id for entry in entries_from_control_plane(nodes, WORLD)}
    assert routed == {node_id for node_id, node in nodes.items() if node.vouched}


def test_control_plane_nodes_without_address_or_known_region_or_good_url_are_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nodes = {
        "no-address": info("no-address", address=""),
        "stray": info("stray", region="moon-1"),
        "bad-url": info("bad-url", address="127.0.0.1:7000"),
        "good": info("good"),
    }
    with caplog.at_level(logging.WARNING, logger="router.inventory"):
        entries = entries_from_control_plane(nodes, WORLD)
    assert [e.node_id for e in entries] == ["good"]
    assert "ignoring node bad-url: '127.0.0.1:7000' is not an edge node URL" in caplog.text
    assert entries_from_control_plane({}, WORLD) == ()


@pytest.mark.parametrize("address", BAD_PORT_URLS)
def test_a_control_plane_node_with_a_bad_port_is_skipped(address: str) -> None:
    nodes = {"bad": info("bad", address=address), "good": info("good")}
    assert [e.node_id for e in entries_from_control_plane(nodes, WORLD)] == ["good"]


def test_a_node_status_from_a_newer_control_plane_does_not_break_the_inventory() -> None:
    nodes = {"new": info("new", status=nodes_pb2.NodeStatus.ValueType(7)), "good": info("good")}
    assert [e.node_id for e in entries_from_control_plane(nodes, WORLD)] == ["good", "new"]


# Replacement as a whole.


def test_inventory_counts_replacements_and_tells_listeners() -> None:
    a = EdgeEntry(node_id="a", region="us-east-1", url="http://127.0.0.1:1")
    b = EdgeEntry(node_id="b", region="eu-central-1", url="http://127.0.0.1:2")
    assert Inventory().generation == 0
    inventory = Inventory([a])
    assert inventory.generation == 1
    assert dict(inventory.entries) == {"a": a}
    calls: list[int] = []
    inventory.on_change(lambda: calls.append(inventory.generation))
    inventory.replace([a])  # the same set: nothing happens
    assert (inventory.generation, calls) == (1, [])
    inventory.replace([b, a])
    assert (inventory.generation, calls) == (2, [2])
    inventory.replace(iter([a, b]))  # order does not matter
    assert (inventory.generation, calls) == (2, [2])
    inventory.replace(
        [a, EdgeEntry(node_id="b", region="eu-central-1", url="http://127.0.0.1:2", reported_utilization=0.5)]
    )
    assert (inventory.generation, calls) == (3, [2, 3])  # a changed field is a change
    assert inventory.entries["b"].reported_utilization == 0.5
    inventory.replace([])
    assert (inventory.generation, calls, dict(inventory.entries)) == (4, [2, 3, 4], {})


def test_every_listener_is_told() -> None:
    inventory = Inventory()
    seen: list[str] = []
    inventory.on_change(lambda: seen.append("first"))
    inventory.on_change(lambda: seen.append(f"second:{sorted(inventory.entries)}"))
    inventory.replace([EdgeEntry(node_id="x", region="us-east-1", url="http://127.0.0.1:1")])
    assert seen == ["first", "second:['x']"]
