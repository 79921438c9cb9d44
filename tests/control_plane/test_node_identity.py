"""Each node its own identity: a hello must match its credential, a live node cannot be taken over
by another credential, and the control plane vouches only for nodes a credential may be."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.auth import Principal, TokenTable, parse_tokens
from control_plane.errors import TokensFileError
from control_plane.sessions import Session, may_replace
from cpclient import auth_metadata
from protos.edgecdn.v1 import nodes_pb2, nodes_pb2_grpc
from tests.control_plane.support import control_plane_in_process

NODE_A, NODE_B, REGION, OTHER_REGION = "eu-central-1-a", "eu-central-1-b", "eu-central-1", "us-east-1"
TOKENS = {
    "viewer": "viewer-token-1",
    "router": "router-token-1",
    "a": "node-a-token-1",
    "a2": "node-a-token-2",  # node a's second credential (a rotation in progress)
    "b": "node-b-token-1",
    "fleet": "fleet-wide-token-1",
}


def tokens_file(path: Path, *, fleet_wide: bool = True) -> Path:
    entries = [
        {"name": "viewer", "role": "viewer", "token": TOKENS["viewer"]},
        {"name": "router", "role": "router", "token": TOKENS["router"]},
        {"name": "a", "role": "node", "token": TOKENS["a"], "node_id": NODE_A, "region": REGION},
        {"name": "a2", "role": "node", "token": TOKENS["a2"], "node_id": NODE_A, "region": REGION},
        {"name": "b", "role": "node", "token": TOKENS["b"], "node_id": NODE_B, "region": REGION},
    ]
    if fleet_wide:
        entries.append({"name": "fleet", "role": "node", "token": TOKENS["fleet"]})
    path.write_text(json.dumps({"tokens": entries}))
    return path


def table(*, fleet_wide: bool = True, tmp: Path) -> TokenTable:
    data = json.loads(tokens_file(tmp / "t.json", fleet_wide=fleet_wide).read_text())
    return TokenTable(parse_tokens(data, source="t.json"))


# -- the pure decisions ----------------------------------------------------------------------


def test_a_bound_credential_may_be_its_node_only(tmp_path: Path) -> None:
    tokens = table(tmp=tmp_path)
    a = tokens.lookup(TOKENS["a"])
    assert a is not None
    assert a.bound
    assert a.credential
    assert tokens.claim_problem(a, node_id=NODE_A, region=REGION) is None
    assert tokens.claim_problem(a, node_id=NODE_B, region=REGION) == (
        "credential 'a' is bound to node 'eu-central-1-a', not 'eu-central-1-b'"
    )
    assert tokens.claim_problem(a, node_id=NODE_A, region=OTHER_REGION) == (
        "credential 'a' is bound to region 'eu-central-1', not 'us-east-1'"
    )
    fleet = tokens.lookup(TOKENS["fleet"])
    assert fleet is not None
    assert not fleet.bound
    assert tokens.claim_problem(fleet, node_id="eu-central-1-z", region=REGION) is None
    assert tokens.claim_problem(fleet, node_id=NODE_A, region=REGION) == (
        "node 'eu-central-1-a' has a credential of its own: the fleet-wide token 'fleet' may not claim it"
    )
    router = tokens.lookup(TOKENS["router"])
    assert router is not None
    assert (
        tokens.claim_problem(router, node_id="r", region=REGION)
        == "router (role 'router') is no node credential"
    )


def test_vouching_follows_the_credentials(tmp_path: Path) -> None:
    with_fleet, without = table(tmp=tmp_path), table(fleet_wide=False, tmp=tmp_path)
    assert with_fleet.vouches(NODE_A, REGION)
    assert without.vouches(NODE_A, REGION)
    assert not with_fleet.vouches(NODE_A, OTHER_REGION)  # a record in another region than its token's
    assert with_fleet.vouches("eu-central-1-z", REGION)  # a fleet-wide token may be any new node
    assert not without.vouches("eu-central-1-z", REGION)  # ... and without one, nobody is


node_ids = st.sampled_from(["n1", "n2", "n3"])
regions = st.sampled_from(["r1", "r2"])


@given(
    bindings=st.dictionaries(node_ids, regions, max_size=3),
    fleet_wide=st.booleans(),
    claim=st.tuples(node_ids, regions),
)
def test_a_claim_is_allowed_exactly_when_the_table_vouches_for_it(
    bindings: dict[str, str], fleet_wide: bool, claim: tuple[str, str]
) -> None:
    principals = {
        f"token-of-{node_id}": Principal(name=node_id, role="node", node_id=node_id, region=region)
        for node_id, region in bindings.items()
    }
    if fleet_wide:
        principals["token-fleet-wide"] = Principal(name="fleet", role="node")
    tokens = TokenTable(principals)
    node_id, region = claim
    allowed = [
        token
        for token in principals
        if tokens.claim_problem(tokens.lookup(token), node_id=node_id, region=region) is None  # type: ignore[arg-type]
    ]
    # Someone may be the node exactly when the control plane vouches for it, and that is its own
    # credential when it has one (never the fleet-wide token then).
    assert bool(allowed) == tokens.vouches(node_id, region)
    if node_id in bindings:
        assert allowed in ([], [f"token-of-{node_id}"])


def test_only_the_same_credential_replaces_a_live_session() -> None:
    live = Session("n", nodes_pb2.SessionParams(), credential="c1")
    assert may_replace(None, "c2")
    assert may_replace(live, "c1")  # the node killed and restarted: in at once
    assert not may_replace(live, "c2")
    live.close("stream ended")
    assert may_replace(live, "c2")  # a session that ended holds nothing


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"role": "viewer", "node_id": "n", "region": "r"}, "only node tokens are bound"),
        ({"role": "node", "node_id": "n"}, "names both node_id and region"),
        ({"role": "node", "region": "r"}, "names both node_id and region"),
        ({"role": "node", "node_id": 7, "region": "r"}, "must be strings"),
    ],
)
def test_bad_bindings_are_refused(entry: dict[str, object], reason: str) -> None:
    with pytest.raises(TokensFileError) as caught:
        parse_tokens({"tokens": [{"name": "x", "token": "abcdefghij", **entry}]}, source="t.json")
    assert reason in str(caught.value)


def test_one_node_in_two_regions_and_a_token_listed_twice_are_refused() -> None:
    a = {"name": "a", "role": "node", "token": "abcdefghij", "node_id": "n", "region": "r1"}
    with pytest.raises(TokensFileError, match="bound to two regions"):
        parse_tokens({"tokens": [a, {**a, "token": "klmnopqrst", "region": "r2"}]}, source="t")
    with pytest.raises(TokensFileError, match="listed twice"):
        parse_tokens({"tokens": [a, {**a, "name": "b"}]}, source="t")


# -- a live control plane --------------------------------------------------------------------


@asynccontextmanager
async def session(
    channel: grpc.aio.Channel, token: str, node_id: str, region: str = REGION
) -> AsyncIterator[grpc.aio.StreamStreamCall[nodes_pb2.NodeMessage, nodes_pb2.ControlMessage]]:
    call = nodes_pb2_grpc.NodeSessionServiceStub(channel).Connect(metadata=auth_metadata(token), timeout=20)
    await call.write(
        nodes_pb2.NodeMessage(
            hello=nodes_pb2.NodeHello(
                node_id=node_id, region=region, address="http://127.0.0.1:7000", capacity_rps=1e9
            )
        )
    )
    try:
        yield call
    finally:
        call.cancel()


async def refused(
    call: grpc.aio.StreamStreamCall[nodes_pb2.NodeMessage, nodes_pb2.ControlMessage],
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), 10)
    return caught.value


async def first_kind(
    call: grpc.aio.StreamStreamCall[nodes_pb2.NodeMessage, nodes_pb2.ControlMessage],
) -> str | None:
    """What the control plane sent first on an accepted session (``params``)."""
    message = await asyncio.wait_for(call.read(), 10)
    assert isinstance(message, nodes_pb2.ControlMessage)
    return message.WhichOneof("message")


async def nodes(channel: grpc.aio.Channel) -> dict[str, nodes_pb2.NodeInfo]:
    listed = await nodes_pb2_grpc.NodeServiceStub(channel).ListNodes(
        nodes_pb2.ListNodesRequest(), metadata=auth_metadata(TOKENS["viewer"]), timeout=5
    )
    return {node.node_id: node for node in listed.nodes}


async def test_a_rogue_hello_with_another_nodes_id_or_region_is_refused(tmp_path: Path) -> None:
    path = tokens_file(tmp_path / "tokens.json")
    async with (
        control_plane_in_process(tmp_path / "cp", tokens_file=path) as live,
        grpc.aio.insecure_channel(live.address) as channel,
    ):
        for node_id, region, token in [
            (NODE_B, REGION, TOKENS["a"]),  # another node's id
            (NODE_A, OTHER_REGION, TOKENS["a"]),  # its own id, in another region
            ("eu-central-1-z", REGION, TOKENS["a"]),  # a new node, with a node's credential
            (NODE_A, REGION, TOKENS["fleet"]),  # a node that has its own credential
            ("r", REGION, TOKENS["router"]),  # not a node at all
        ]:
            async with session(channel, token, node_id, region) as call:
                error = await refused(call)
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (node_id, region, error)
            assert error.details() != ""
        assert await nodes(channel) == {}  # nothing was registered
        async with session(channel, TOKENS["a"], NODE_A) as call:
            assert await first_kind(call) == "params"
            assert (await nodes(channel))[NODE_A].vouched


async def test_a_live_node_is_not_taken_over_by_another_credential(tmp_path: Path) -> None:
    path = tokens_file(tmp_path / "tokens.json")
    async with (
        control_plane_in_process(tmp_path / "cp", tokens_file=path) as live,
        grpc.aio.insecure_channel(live.address) as channel,
    ):
        async with session(channel, TOKENS["a"], NODE_A) as first:
            assert await first_kind(first) == "params"
            async with session(channel, TOKENS["a2"], NODE_A) as second:
                error = await refused(second)
            assert error.code() == grpc.StatusCode.ALREADY_EXISTS
            assert "live session opened with another credential" in (error.details() or "")
            # The first session still holds the node: it heartbeats and stays ready.
            await first.write(nodes_pb2.NodeMessage(heartbeat=nodes_pb2.Heartbeat()))
            assert (await nodes(channel))[NODE_A].status == nodes_pb2.NODE_STATUS_READY
            # The same credential again (the node killed and restarted) replaces it at once.
            async with session(channel, TOKENS["a"], NODE_A) as again:
                assert await first_kind(again) == "params"
                error = await refused(first)
                assert error.code() == grpc.StatusCode.ABORTED
        # Once no session lives, node a's other credential gets in.
        async with session(channel, TOKENS["a2"], NODE_A) as rotated:
            assert await first_kind(rotated) == "params"


async def test_a_node_whose_credential_is_gone_is_no_longer_vouched_for(tmp_path: Path) -> None:
    """The rogue of the finding: a big node claimed with a fleet-wide token stays in the control
    plane's records; once the world issues per-node tokens only, nobody vouches for it."""
    data_dir = tmp_path / "cp"
    path = tokens_file(tmp_path / "tokens.json")
    async with (
        control_plane_in_process(data_dir, tokens_file=path) as live,
        grpc.aio.insecure_channel(live.address) as channel,
        session(channel, TOKENS["fleet"], "eu-central-1-z") as rogue,
    ):
        assert await first_kind(rogue) == "params"
        assert (await nodes(channel))["eu-central-1-z"].vouched
    tokens_file(path, fleet_wide=False)
    async with (
        control_plane_in_process(data_dir, tokens_file=path) as live,
        grpc.aio.insecure_channel(live.address) as channel,
    ):
        listed = await nodes(channel)
        assert not listed["eu-central-1-z"].vouched
        async with session(channel, TOKENS["fleet"], "eu-central-1-z") as rogue:
            assert (await refused(rogue)).code() == grpc.StatusCode.UNAUTHENTICATED
