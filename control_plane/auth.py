"""Bearer tokens and roles: who may call which RPC (pure decisions plus the tokens file).

Roles: ``viewer`` lists, gets and watches; ``operator`` may also push, register, deploy and
delete; ``node`` (edge nodes) may open a node session, download modules, watch the node
inventory and export spans (OTLP); ``router`` may only watch the node inventory and export
spans; ``gateway`` (IoT gateways) may only download modules (OTA updates fetched by digest)
and export their spans. Health and reflection are open to everyone. The tokens file is JSON
(``.json``) or TOML (anything else) in either of two shapes, documented in
docs/control-plane.md::

    {"viewer": "t1", "operator": "t2", "node": ["t3", "t4"]}          # role -> token(s)
    {"tokens": [{"name": "alice", "role": "operator", "token": "t2"},  # named tokens
                {"name": "n1", "role": "node", "token": "t5", "node_id": "eu-central-1-a",
                 "region": "eu-central-1"}]}                           # a node's own credential

A node credential bound to a node id and region (``node_id`` + ``region``) may open a session
only as that node (``claim_problem``). A node token without them is fleet-wide (the legacy
shared token, kept for tests and tools): it may be any node that has no credential of its
own, never one that has. The control plane vouches for a node (``TokenTable.vouches``) while a
credential that may be it is in the table; routers route only to vouched nodes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args

from control_plane.errors import TokensFileError

logger = logging.getLogger(__name__)

Role = Literal["viewer", "operator", "node", "gateway", "router"]
ROLES: tuple[Role, ...] = get_args(Role)

OPEN_SERVICE_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_READ: frozenset[Role] = frozenset({"viewer", "operator"})
_WRITE: frozenset[Role] = frozenset({"operator"})
METHOD_ROLES: Mapping[str, frozenset[Role]] = {
    "/edgecdn.v1.ModuleService/ListModules": _READ,
    "/edgecdn.v1.ModuleService/UploadModule": _WRITE,
    "/edgecdn.v1.ModuleService/DeleteModule": _WRITE,
    "/edgecdn.v1.ModuleService/DownloadModule": frozenset({"operator", "node", "gateway"}),
    "/edgecdn.v1.AppService/ListApps": _READ,
    "/edgecdn.v1.AppService/GetApp": _READ,
    "/edgecdn.v1.AppService/RegisterApp": _WRITE,
    "/edgecdn.v1.AppService/RemoveApp": _WRITE,
    "/edgecdn.v1.DeploymentService/Deploy": _WRITE,
    "/edgecdn.v1.DeploymentService/GetDeployment": _READ,
    "/edgecdn.v1.DeploymentService/WatchDeployment": _READ,
    "/edgecdn.v1.NodeService/ListNodes": _READ,
    # Routers follow the inventory with their own role; "node" too, for routers and tools that
    # still hold a fleet-wide node token (the inventory is addresses and load, nothing secret).
    "/edgecdn.v1.NodeService/WatchNodes": _READ | {"node", "router"},
    "/edgecdn.v1.NodeSessionService/Connect": frozenset({"node"}),
    "/edgecdn.v1.CacheService/PurgeCache": _WRITE,
    "/edgecdn.v1.TraceQueryService/ListTraces": _READ,
    "/edgecdn.v1.TraceQueryService/GetTrace": _READ,
    "/edgecdn.v1.TraceQueryService/GetStats": _READ,
    "/edgecdn.v1.RolloutService/GetRollout": _READ,
    "/edgecdn.v1.RolloutService/ListRollouts": _READ,
    "/edgecdn.v1.RolloutService/WatchRollout": _READ,
    "/edgecdn.v1.RolloutService/StartRollout": _WRITE,
    "/edgecdn.v1.RolloutService/PauseRollout": _WRITE,
    "/edgecdn.v1.RolloutService/ResumeRollout": _WRITE,
    "/edgecdn.v1.RolloutService/PromoteRollout": _WRITE,
    "/edgecdn.v1.RolloutService/AbortRollout": _WRITE,
    "/edgecdn.v1.GatewayService/ListGateways": _READ,
    "/edgecdn.v1.GatewayService/SendGatewayCommand": _WRITE,
    "/edgecdn.v1.GatewayService/StreamGatewayCommand": _WRITE,
    # Nodes, routers and gateways export spans; operators may point any OTLP exporter here
    # (OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20<token>").
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": frozenset(
        {"node", "operator", "gateway", "router"}
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who a token belongs to."""

    name: str
    role: Role
    # A node credential's one node and region; both empty for a fleet-wide node token.
    node_id: str = ""
    region: str = ""
    # Which credential (a prefix of the token's sha256): tells two tokens apart without the secret.
    credential: str = ""

    @property
    def bound(self) -> bool:
        return bool(self.node_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Denial:
    """Why a call is refused: ``unauthenticated`` (who are you?) or ``forbidden`` (not you)."""

    kind: Literal["unauthenticated", "forbidden"]
    message: str


def required_roles(method: str) -> frozenset[Role] | None:
    """Roles allowed to call ``method`` (a full gRPC method path); None when it is open."""
    if method.startswith(OPEN_SERVICE_PREFIXES):
        return None
    # Methods not listed (future services) need the strongest role until they are listed.
    return METHOD_ROLES.get(method, _WRITE)


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class TokenTable:
    """Looks principals up by token (by the token's sha256, so the table holds no secrets)."""

    def __init__(self, principals: Mapping[str, Principal]) -> None:
        self._by_hash = {
            _hash(token): replace(p, credential=_hash(token)[:CREDENTIAL_ID_LENGTH])
            for token, p in principals.items()
        }
        # node id -> region of every bound node credential (a node may have several, for rotation).
        self._bound: dict[str, str] = {p.node_id: p.region for p in self._by_hash.values() if p.bound}
        self.fleet_wide_node_tokens = sum(
            1 for p in self._by_hash.values() if p.role == "node" and not p.bound
        )

    def __len__(self) -> int:
        return len(self._by_hash)

    def claim_problem(self, principal: Principal, *, node_id: str, region: str) -> str | None:
        """Why ``principal`` may not open a session as ``node_id`` in ``region``; None when it may."""
        if principal.role != "node":
            return f"{principal.name} (role {principal.role!r}) is no node credential"
        if principal.bound:
            if node_id != principal.node_id:
                return (
                    f"credential {principal.name!r} is bound to node {principal.node_id!r}, not {node_id!r}"
                )
            if region != principal.region:
                return (
                    f"credential {principal.name!r} is bound to region {principal.region!r}, not {region!r}"
                )
            return None
        if node_id in self._bound:
            return (
                f"node {node_id!r} has a credential of its own: "
                f"the fleet-wide token {principal.name!r} may not claim it"
            )
        return None

    def vouches(self, node_id: str, region: str) -> bool:
        """Whether a credential in this table may be ``node_id`` in ``region`` (what routers trust)."""
        if node_id in self._bound:
            return self._bound[node_id] == region
        return self.fleet_wide_node_tokens > 0

    def lookup(self, token: str) -> Principal | None:
        return self._by_hash.get(_hash(token))

    def decide(self, method: str, authorization: str | None) -> Principal | Denial | None:
        """The caller's principal, a Denial, or None for an open method."""
        allowed = required_roles(method)
        if allowed is None:
            return None
        if authorization is None:
            return Denial(
                kind="unauthenticated",
                message="missing credentials: send metadata 'authorization: Bearer <token>'",
            )
        token = bearer_token(authorization)
        if token is None:
            return Denial(
                kind="unauthenticated", message="malformed authorization: expected 'Bearer <token>'"
            )
        principal = self.lookup(token)
        if principal is None:
            return Denial(kind="unauthenticated", message="invalid token")
        if principal.role not in allowed:
            short = method.rsplit(".", 1)[-1]
            needs = " or ".join(sorted(allowed))
            return Denial(
                kind="forbidden", message=f"role {principal.role!r} may not call {short} (needs {needs})"
            )
        return principal


CREDENTIAL_ID_LENGTH = 16


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _entries(data: Any, *, source: str) -> list[tuple[str, Any, Any, Mapping[str, Any]]]:
    """(name, role, token, the whole entry) for each token of either documented shape."""
    if not isinstance(data, dict):
        raise TokensFileError(path=source, reason="expected a table/object at the top level")
    entries: list[tuple[str, Any, Any, Mapping[str, Any]]] = []
    if "tokens" in data:
        if not isinstance(data["tokens"], list):
            raise TokensFileError(path=source, reason="'tokens' must be a list of tables")
        for i, item in enumerate(data["tokens"]):
            if not isinstance(item, dict):
                raise TokensFileError(path=source, reason=f"tokens[{i}] must be a table")
            entries.append((str(item.get("name", f"tokens[{i}]")), item.get("role"), item.get("token"), item))
    else:
        for role, value in data.items():
            tokens = value if isinstance(value, list) else [value]
            entries.extend((str(role), role, token, {}) for token in tokens)
    return entries


def parse_tokens(data: Any, *, source: str) -> dict[str, Principal]:
    """token -> principal from a parsed tokens file (either documented shape)."""
    principals: dict[str, Principal] = {}
    regions: dict[str, str] = {}
    for name, role, token, item in _entries(data, source=source):
        if role not in ROLES:
            raise TokensFileError(
                path=source, reason=f"{name}: role {role!r} is not one of {', '.join(ROLES)}"
            )
        if not isinstance(token, str) or len(token) < 8:
            raise TokensFileError(path=source, reason=f"{name}: token must be a string of 8+ characters")
        if token in principals:
            raise TokensFileError(path=source, reason=f"{name}: the same token is listed twice")
        node_id, region = _binding(item, name=name, role=role, source=source)
        if node_id and regions.setdefault(node_id, region) != region:
            raise TokensFileError(path=source, reason=f"{name}: node {node_id!r} is bound to two regions")
        principals[token] = Principal(name=name, role=role, node_id=node_id, region=region)
    if not principals:
        raise TokensFileError(path=source, reason="no tokens")
    return principals


def _binding(item: Mapping[str, Any], *, name: str, role: str, source: str) -> tuple[str, str]:
    """The ``node_id`` and ``region`` a named token is bound to: both or neither, node role only."""
    node_id, region = item.get("node_id", ""), item.get("region", "")
    if not isinstance(node_id, str) or not isinstance(region, str):
        raise TokensFileError(path=source, reason=f"{name}: node_id and region must be strings")
    if not node_id and not region:
        return "", ""
    if role != "node":
        raise TokensFileError(
            path=source, reason=f"{name}: only node tokens are bound to a node_id and region"
        )
    if not node_id or not region:
        raise TokensFileError(path=source, reason=f"{name}: a node token names both node_id and region")
    return node_id, region


def load_tokens_file(path: Path) -> TokenTable:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise TokensFileError(path=str(path), reason=f"unreadable: {exc}") from exc
    table = TokenTable(parse_tokens(data, source=str(path)))
    if table.fleet_wide_node_tokens:
        # Allowed (tests, tools, old files), but whoever holds one may join as a new node.
        logger.warning(
            "%s has %d fleet-wide node token(s) (no node_id/region): any holder may join as a node "
            "that has no credential of its own (docs/control-plane.md)",
            path,
            table.fleet_wide_node_tokens,
        )
    return table


def ensure_generated_tokens(path: Path) -> TokenTable:
    """Load ``path``, first writing one fresh token per role there (mode 0600) if it is absent."""
    if not path.exists():
        tokens = {role: f"{role}-{secrets.token_hex(20)}" for role in ROLES}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(tokens, out, indent=2)
            out.write("\n")
    return load_tokens_file(path)
