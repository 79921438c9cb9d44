"""The local world's tokens: each node its own, bound to its id and region; no shared node token."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from control_plane.auth import load_tokens_file
from geo.world import load_world
from runtime.signing import load_public_key, load_trusted_keys, sign_digest
from simulator.errors import SimulatorError
from simulator.layout import node_regions
from simulator.world_tokens import ROLES, ensure_signing_key, ensure_world_tokens
from tests.conftest import REPO_ROOT

WORLD = load_world(REPO_ROOT / "deploy" / "local" / "world.toml")


def test_each_node_gets_a_token_that_can_be_only_that_node(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    regions = node_regions(WORLD)
    tokens = ensure_world_tokens(path, regions)
    assert set(tokens.roles) == set(ROLES)
    assert "node" not in tokens.roles
    assert set(tokens.nodes) == set(regions)
    assert len(set(tokens.nodes.values()) | set(tokens.roles.values())) == len(regions) + len(ROLES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    table = load_tokens_file(path)  # the control plane reads the same file
    assert table.fleet_wide_node_tokens == 0
    for node_id, region in regions.items():
        principal = table.lookup(tokens.nodes[node_id])
        assert principal is not None
        assert (principal.node_id, principal.region) == (node_id, region)
        assert table.claim_problem(principal, node_id=node_id, region=region) is None
        for other in set(regions) - {node_id}:
            assert table.claim_problem(principal, node_id=other, region=regions[other]) is not None
    router = table.lookup(tokens.roles["router"])
    assert router is not None
    assert router.role == "router"
    assert not table.vouches("eu-central-1-z", "eu-central-1")  # nobody may be a node not in the world


def test_tokens_are_kept_across_runs_and_follow_the_world(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    first = ensure_world_tokens(path, {"r1-a": "r1", "r1-b": "r1"})
    before = path.stat().st_mtime_ns
    assert ensure_world_tokens(path, {"r1-a": "r1", "r1-b": "r1"}) == first
    assert path.stat().st_mtime_ns == before  # unchanged: not rewritten
    grown = ensure_world_tokens(path, {"r1-a": "r1", "r2-a": "r2"})
    assert grown.roles == first.roles
    assert grown.nodes["r1-a"] == first.nodes["r1-a"]
    assert "r1-b" not in grown.nodes  # a node taken out loses its token
    assert grown.nodes["r2-a"] not in first.nodes.values()
    moved = ensure_world_tokens(path, {"r1-a": "r9"})  # a node id now in another region: a new token
    assert moved.nodes["r1-a"] != first.nodes["r1-a"]


def test_a_tokens_file_of_the_older_shape_loses_its_shared_node_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    old = {
        "operator": "operator-tok-1",
        "viewer": "viewer-tok-1",
        "node": "shared-node-1",
        "gateway": "gw-tok-12",
    }
    path.write_text(json.dumps(old))
    tokens = ensure_world_tokens(path, {"r1-a": "r1"})
    assert {role: tokens.roles[role] for role in ("operator", "viewer", "gateway")} == {
        "operator": "operator-tok-1",
        "viewer": "viewer-tok-1",
        "gateway": "gw-tok-12",
    }
    table = load_tokens_file(path)
    assert table.lookup("shared-node-1") is None
    assert table.fleet_wide_node_tokens == 0


def test_an_unreadable_file_is_made_anew(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    tokens = ensure_world_tokens(path, {"r1-a": "r1"})
    assert load_tokens_file(path).lookup(tokens.nodes["r1-a"]) is not None


def test_the_world_keeps_one_signing_key_its_nodes_can_trust(tmp_path: Path) -> None:
    made = ensure_signing_key(tmp_path)
    assert made.private == tmp_path / "signing-key.pem"
    assert stat.S_IMODE(made.private.stat().st_mode) == 0o600
    assert load_public_key(made.public)[0] == made.key.key_id
    digest = "ab" * 32
    trusted = load_trusted_keys([made.public])
    assert (
        trusted.check(sha256=digest, name="m", signatures=[sign_digest(made.key, digest)]) == made.key.key_id
    )
    # Kept across runs; a lost or damaged public half is written again from the private key.
    assert ensure_signing_key(tmp_path).key.key_id == made.key.key_id
    made.public.write_text("damaged")
    assert load_public_key(ensure_signing_key(tmp_path).public)[0] == made.key.key_id
    made.public.unlink()
    assert load_public_key(ensure_signing_key(tmp_path).public)[0] == made.key.key_id


def test_a_damaged_world_signing_key_is_an_error_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "signing-key.pem").write_text("not a key")
    with pytest.raises(
        SimulatorError, match=r"the world's signing key: key file .*signing-key.pem: not a PEM"
    ):
        ensure_signing_key(tmp_path)
    assert (tmp_path / "signing-key.pem").read_text() == "not a key"
