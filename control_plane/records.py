"""Plain values the repository stores and returns (no gRPC, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runtime.signing import Signature

ProgressState = Literal["pending", "acked", "nacked"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleRecord:
    """One stored module; ``abi`` is the ``edgecdn.v1.Abi`` number given at upload."""

    sha256: str
    name: str
    size_bytes: int
    abi: int
    created_at: float
    imports: tuple[str, ...] = ()
    signatures: tuple[Signature, ...] = ()  # of the digest, one per key (runtime.signing)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentRecord:
    """A deployment; ``selector`` is a serialized ``edgecdn.v1.Selector``."""

    id: int
    app_name: str
    app_version: str
    selector: bytes
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressRecord:
    """One node's answer to a deployment; ``error`` is a serialized ``ErrorDetail``."""

    node_id: str
    region: str
    state: str
    error: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    """What survives a restart about a node (its session status does not)."""

    node_id: str
    region: str
    pop: str = ""
    address: str = ""
    agent_version: str = ""
    capacity_rps: float = 0.0
    assignment_version: str = ""
    app_name: str = ""
    app_version: str = ""
    last_heartbeat: float = 0.0
    last_error: bytes | None = None
