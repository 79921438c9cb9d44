"""What a node session is made of: who the node is, where the control plane is, what the
node runs, what the session counts, and where heartbeat figures come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from cpclient.backoff import Backoff
from cpclient.channel import TlsSettings
from protos.edgecdn.v1 import apps_pb2, nodes_pb2

AGENT_VERSION = "cpclient/0.1"


class HeartbeatFigures(Protocol):
    """Where a node's heartbeat figures come from (``edge_node.figures.FiguresBook``)."""

    def take(self) -> nodes_pb2.Heartbeat:
        """A heartbeat carrying the figures not reported yet (they count as reported now)."""
        ...

    def give_back(self, heartbeat: nodes_pb2.Heartbeat) -> None:
        """``heartbeat`` was not written: its figures go with the next one."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeIdentity:
    """Who the node is, as its hello says."""

    node_id: str
    region: str
    pop: str = ""
    address: str = ""
    capacity_rps: float = 0.0
    agent_version: str = AGENT_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    """Where the control plane is and how to reach it."""

    target: str
    token: str
    tls: TlsSettings | None = None
    backoff: Backoff = field(default_factory=Backoff)
    fetch_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AppliedState:
    """What the node runs: the assignment version in effect and its app (None: nothing)."""

    version: str = ""
    app: apps_pb2.AppVersion | None = None


@dataclass(slots=True)
class SessionStats:
    """Counters, for tests, benchmarks and the node's admin endpoint."""

    connects: int = 0
    purges: int = 0
    assignments: int = 0
    acks: int = 0
    nacks: int = 0
    modules_downloaded: int = 0
    bytes_downloaded: int = 0
    last_error: str = ""
