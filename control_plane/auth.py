"""Bearer tokens and roles: who may call which RPC (pure decisions plus the tokens file).

Roles: ``viewer`` lists, gets and watches; ``operator`` may also push, register, deploy and
delete; ``node`` (edge nodes, routers, gateways) may open a node session, download modules,
watch the node inventory and export spans (OTLP); ``gateway`` (IoT gateways) may only
download modules (OTA updates fetched by digest). Health and reflection are
open to everyone. The tokens file is JSON (``.json``) or TOML (anything else) in either of
two shapes, documented in docs/control-plane.md::

    {"viewer": "t1", "operator": "t2", "node": ["t3", "t4"]}          # role -> token(s)
    {"tokens": [{"name": "alice", "role": "operator", "token": "t2"}]}  # named tokens
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from control_plane.errors import TokensFileError

Role = Literal["viewer", "operator", "node", "gateway"]
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
    "/edgecdn.v1.DeploymentService/Deploy": _WRITE,
    "/edgecdn.v1.DeploymentService/GetDeployment": _READ,
    "/edgecdn.v1.DeploymentService/WatchDeployment": _READ,
    "/edgecdn.v1.NodeService/ListNodes": _READ,
    # Routers hold the node token (data-plane infrastructure) and follow the inventory.
    "/edgecdn.v1.NodeService/WatchNodes": _READ | {"node"},
    "/edgecdn.v1.NodeSessionService/Connect": frozenset({"node"}),
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
    # Nodes, routers and gateways export spans; operators may point any OTLP exporter here
    # (OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20<token>").
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": frozenset({"node", "operator"}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who a token belongs to."""

    name: str
    role: Role


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
        self._by_hash = {_hash(token): p for token, p in principals.items()}

    def __len__(self) -> int:
        return len(self._by_hash)

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


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(data: Any, *, source: str) -> dict[str, Principal]:
    """token -> principal from a parsed tokens file (either documented shape)."""
    if not isinstance(data, dict):
        raise TokensFileError(path=source, reason="expected a table/object at the top level")
    entries: list[tuple[str, Any, Any]] = []
    if "tokens" in data:
        if not isinstance(data["tokens"], list):
            raise TokensFileError(path=source, reason="'tokens' must be a list of tables")
        for i, item in enumerate(data["tokens"]):
            if not isinstance(item, dict):
                raise TokensFileError(path=source, reason=f"tokens[{i}] must be a table")
            entries.append((str(item.get("name", f"tokens[{i}]")), item.get("role"), item.get("token")))
    else:
        for role, value in data.items():
            tokens = value if isinstance(value, list) else [value]
            entries.extend((str(role), role, token) for token in tokens)
    principals: dict[str, Principal] = {}
    for name, role, token in entries:
        if role not in ROLES:
            raise TokensFileError(
                path=source, reason=f"{name}: role {role!r} is not one of {', '.join(ROLES)}"
            )
        if not isinstance(token, str) or len(token) < 8:
            raise TokensFileError(path=source, reason=f"{name}: token must be a string of 8+ characters")
        principals[token] = Principal(name=name, role=role)
    if not principals:
        raise TokensFileError(path=source, reason="no tokens")
    return principals


def load_tokens_file(path: Path) -> TokenTable:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise TokensFileError(path=str(path), reason=f"unreadable: {exc}") from exc
    return TokenTable(parse_tokens(data, source=str(path)))


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
