"""The local world's credentials: one token per operator-side role, and one per edge node.

``edgecdn up`` keeps them in ``<state dir>/tokens.json`` (mode 0600), which is also the
control plane's ``--tokens`` file, in the named shape of docs/control-plane.md::

    {"tokens": [{"name": "operator", "role": "operator", "token": "..."},
                {"name": "node eu-central-1-a", "role": "node", "token": "...",
                 "node_id": "eu-central-1-a", "region": "eu-central-1"}, ...]}

Each edge node gets a token bound to its node id and region, so a node (or a process that
stole one node's token) can only ever be that node. There is no shared node token: the router
has the ``router`` role, the gateways ``gateway``. Tokens are kept across runs; a node added to
the world gets a new token, a node no longer in it loses its own (the control plane then no
longer vouches for it). A file of the older shape (role -> token, with a shared ``node``
token) keeps its operator, viewer and gateway tokens and loses the shared node token.

Beside the tokens, the world keeps one Ed25519 signing key (``signing-key.pem``, mode 0600,
and its public key ``signing-key.pem.pub``), also kept across runs: ``edgecdn up`` signs
the modules it registers with it and starts every edge node and gateway trusting only its
public key, so the world runs signed modules only (docs/control-plane.md, "Signed modules").
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.files import write_bytes_atomically
from runtime.signing import (
    WORLD_SIGNING_KEY_FILE,
    KeyFileError,
    SigningKey,
    generate_key_pair,
    load_public_key,
    load_signing_key,
    public_key_path,
    public_key_pem,
)
from simulator.errors import SimulatorError

# Published in world.json for operators' tools (edgectl, edgecdn status) and the processes.
ROLES = ("operator", "viewer", "router", "gateway")
MIN_TOKEN_LENGTH = 8
NODE_PREFIX = "node "


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldTokens:
    """The world's tokens: by role (``roles``) and each edge node's own (``nodes``, by node id)."""

    roles: Mapping[str, str]
    nodes: Mapping[str, str]


def tokens_document(tokens: WorldTokens, node_regions: Mapping[str, str]) -> dict[str, Any]:
    """The control plane's tokens file for ``tokens`` (named shape; nodes bound to id and region)."""
    entries: list[dict[str, str]] = [
        {"name": role, "role": role, "token": token} for role, token in tokens.roles.items()
    ]
    entries.extend(
        {
            "name": f"{NODE_PREFIX}{node_id}",
            "role": "node",
            "token": token,
            "node_id": node_id,
            "region": node_regions[node_id],
        }
        for node_id, token in tokens.nodes.items()
    )
    return {"tokens": entries}


def kept_tokens(data: Any, node_regions: Mapping[str, str]) -> WorldTokens:
    """What of a previous tokens file still fits the world (empty parts are made anew)."""
    roles: dict[str, str] = {}
    nodes: dict[str, str] = {}
    if isinstance(data, dict) and isinstance(data.get("tokens"), list):
        for item in data["tokens"]:
            if not isinstance(item, dict) or not _usable(item.get("token")):
                continue
            role, node_id = item.get("role"), str(item.get("node_id", ""))
            if role in ROLES and item.get("name") == role:
                roles[str(role)] = item["token"]
            elif role == "node" and node_id in node_regions and item.get("region") == node_regions[node_id]:
                nodes[node_id] = item["token"]
    elif isinstance(data, dict):  # the older shape: role -> token (its shared node token is dropped)
        roles = {role: data[role] for role in ROLES if _usable(data.get(role))}
    return WorldTokens(roles=roles, nodes=nodes)


def _usable(token: Any) -> bool:
    return isinstance(token, str) and len(token) >= MIN_TOKEN_LENGTH


def ensure_world_tokens(path: Path, node_regions: Mapping[str, str]) -> WorldTokens:
    """The world's tokens kept in ``path``, made for what is missing (``node_regions``: node
    id -> region of every edge node of the world); ``path`` is rewritten only when it changes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None  # none yet, or unusable: make new ones
    kept = kept_tokens(data, node_regions)
    tokens = WorldTokens(
        roles={role: kept.roles.get(role) or secrets.token_urlsafe(24) for role in ROLES},
        nodes={node_id: kept.nodes.get(node_id) or secrets.token_urlsafe(24) for node_id in node_regions},
    )
    document = tokens_document(tokens, node_regions)
    if document != data:
        # mkstemp makes the temporary file 0600, and the rename keeps that mode.
        write_bytes_atomically(path, json.dumps(document, indent=2).encode())
    return tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldSigningKey:
    """The world's signing key (``key``, from ``private``) and its public key file (``public``)."""

    key: SigningKey
    private: Path
    public: Path


def ensure_signing_key(state_dir: Path) -> WorldSigningKey:
    """The world's signing key kept in ``state_dir``, made when there is none; its public key
    file is written again when missing or not the private key's. A private key file that
    cannot be read is an error, not replaced: modules the world signed with it would no
    longer be trusted."""
    private = state_dir / WORLD_SIGNING_KEY_FILE
    public = public_key_path(private)
    try:
        if not private.exists():
            public.unlink(missing_ok=True)  # the public half of a lost key vouches for nothing
            generate_key_pair(private)
        key = load_signing_key(private)
        if _key_id_in(public) != key.key_id:
            write_bytes_atomically(public, public_key_pem(key.private_key))
    except KeyFileError as exc:
        raise SimulatorError(f"the world's signing key: {exc} (remove it to make a new one)") from exc
    return WorldSigningKey(key=key, private=private, public=public)


def _key_id_in(public: Path) -> str | None:
    try:
        return load_public_key(public)[0]
    except KeyFileError:
        return None  # missing or damaged: written again from the private key
