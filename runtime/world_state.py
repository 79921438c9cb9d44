"""``.edgecdn/world.json``: how a running local world tells its tools where everything is.

``edgecdn up`` writes it once every process is ready, rewrites it whenever a process
exits or is restarted, and removes it when the world stops; ``edgectl``, ``edgecdn load``,
``edgecdn status`` and ``edgecdn chaos`` read it so they need no flags. The schema is documented
in docs/world-state.md; keys are only ever added, never renamed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import WorldStateError
from runtime.files import write_atomically

SCHEMA_VERSION = 1
DEFAULT_STATE_DIR = Path(".edgecdn")
STATE_FILE_NAME = "world.json"
STATE_DIR_ENV = "EDGECDN_STATE_DIR"


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeNodeEntry:
    """One running edge node."""

    node_id: str
    region: str
    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayEntry:
    """One simulated IoT gateway and the process that runs it (docs/iot.md)."""

    gateway_id: str
    region: str
    process: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessEntry:
    """One child process of the world, for humans, for cleanup and for ``edgecdn chaos``.

    ``state`` is ``up`` or ``restarting`` (exited; the supervisor starts it again after its
    back-off); ``since`` is when it entered that state (Unix seconds); ``last_exit`` says how
    its previous run ended (``killed by SIGKILL``), None before its first exit.
    """

    name: str
    pid: int
    log: str
    state: str = "up"
    restarts: int = 0
    since: float | None = None
    last_exit: str | None = None
    addresses: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "log": self.log,
            "state": self.state,
            "restarts": self.restarts,
            "since": self.since,
            "last_exit": self.last_exit,
            "addresses": dict(self.addresses),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessEntry:
        since = data.get("since")
        last_exit = data.get("last_exit")
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            log=str(data["log"]),
            state=str(data.get("state", "up")),
            restarts=int(data.get("restarts", 0)),
            since=None if since is None else float(since),
            last_exit=None if last_exit is None else str(last_exit),
            addresses={str(k): str(v) for k, v in dict(data.get("addresses", {})).items()},
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorldState:
    """Everything a tool needs to reach a running local world."""

    world_file: str
    supervisor_pid: int
    control_plane_address: str
    processes: tuple[ProcessEntry, ...] = ()
    router_url: str | None = None
    edge_nodes: tuple[EdgeNodeEntry, ...] = ()
    tokens: Mapping[str, str] = field(default_factory=dict)
    mqtt_url: str | None = None
    # MQTT version the broker speaks ("5": Mosquitto, "3.1.1": amqtt), and the world's gateways.
    mqtt_protocol: str | None = None
    gateways: tuple[GatewayEntry, ...] = ()
    # The fault relay's admin API (docs/faultrelay.md) and the world's event log (docs/chaos.md).
    fault_relay_url: str | None = None
    events_file: str | None = None

    def process(self, name: str) -> ProcessEntry | None:
        """The child process called ``name`` (``control-plane``, ``edge-node REGION-a``, ...)."""
        return next((entry for entry in self.processes if entry.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "world_file": self.world_file,
            "supervisor_pid": self.supervisor_pid,
            "control_plane": {"address": self.control_plane_address},
            "edge_nodes": [{"node_id": n.node_id, "region": n.region, "url": n.url} for n in self.edge_nodes],
            "tokens": dict(self.tokens),
            "processes": [p.to_dict() for p in self.processes],
        }
        if self.fault_relay_url is not None:
            data["fault_relay"] = {"url": self.fault_relay_url}
        if self.events_file is not None:
            data["events_file"] = self.events_file
        if self.router_url is not None:
            data["router"] = {"url": self.router_url}
        if self.mqtt_url is not None:
            data["mqtt"] = {"url": self.mqtt_url, "protocol": self.mqtt_protocol or "5"}
        data["gateways"] = [
            {"gateway_id": g.gateway_id, "region": g.region, "process": g.process} for g in self.gateways
        ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str) -> WorldState:
        try:
            router = data.get("router")
            mqtt = data.get("mqtt")
            relay = data.get("fault_relay")
            events = data.get("events_file")
            return cls(
                world_file=str(data["world_file"]),
                supervisor_pid=int(data["supervisor_pid"]),
                control_plane_address=str(data["control_plane"]["address"]),
                processes=tuple(ProcessEntry.from_dict(p) for p in data.get("processes", [])),
                router_url=None if router is None else str(router["url"]),
                edge_nodes=tuple(
                    EdgeNodeEntry(node_id=str(n["node_id"]), region=str(n["region"]), url=str(n["url"]))
                    for n in data.get("edge_nodes", [])
                ),
                tokens={str(k): str(v) for k, v in dict(data.get("tokens", {})).items()},
                mqtt_url=None if mqtt is None else str(mqtt["url"]),
                mqtt_protocol=None if mqtt is None else str(mqtt.get("protocol", "5")),
                gateways=tuple(
                    GatewayEntry(
                        gateway_id=str(g["gateway_id"]), region=str(g["region"]), process=str(g["process"])
                    )
                    for g in data.get("gateways", [])
                ),
                fault_relay_url=None if relay is None else str(relay["url"]),
                events_file=None if events is None else str(events),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise WorldStateError(path=source, reason=f"missing or malformed key {exc}") from exc


def state_dir() -> Path:
    """The state directory: ``$EDGECDN_STATE_DIR`` or ``.edgecdn`` in the current directory."""
    return Path(os.environ.get(STATE_DIR_ENV, DEFAULT_STATE_DIR))


def write_world_state(path: Path, state: WorldState) -> None:
    """Write ``state`` to ``path`` atomically (readers never see half a file)."""
    write_atomically(path, json.dumps(state.to_dict(), indent=2) + "\n")


def read_world_state(path: Path | None = None) -> WorldState:
    """Read the running world's state; a clear WorldStateError when there is none."""
    path = path or state_dir() / STATE_FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise WorldStateError(path=str(path), reason="no running world (start one with `make up`)") from exc
    except (OSError, ValueError) as exc:
        raise WorldStateError(path=str(path), reason=f"unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise WorldStateError(path=str(path), reason="not a JSON object")
    return WorldState.from_dict(data, source=str(path))
