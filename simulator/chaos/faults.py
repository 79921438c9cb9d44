"""What a fault is and what it hits: pure code, no I/O.

A :class:`Fault` is one action against one target. Targets name processes of the world
as people say them: ``control-plane``, ``router``, ``fault-relay``, ``broker``, an edge
node id (``ap-northeast-2-a``), a region id (all of its edge nodes), or any process name
as world.json lists it (``edge-node ap-northeast-2-a``). Network faults (``partition``,
``wan``) take a region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from runtime.durations import parse_duration
from runtime.world_state import ProcessEntry, WorldState
from simulator.errors import ChaosError

Action = Literal["kill", "freeze", "thaw", "partition", "wan", "heal"]
ACTIONS: tuple[Action, ...] = ("kill", "freeze", "thaw", "partition", "wan", "heal")
SIGNALS = ("KILL", "TERM", "INT")
PROCESS_ALIASES: Mapping[str, str] = {
    "control-plane": "control-plane",
    "router": "edge-router",
    "edge-router": "edge-router",
    "fault-relay": "fault-relay",
    "broker": "mqtt-broker",
}
NODE_PREFIX = "edge-node "


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One fault: ``action`` against ``target`` (``heal`` takes none: it undoes every fault).

    ``for_s`` bounds how long it lasts (None: until healed); ``kill`` is instant and takes none.
    """

    action: Action
    target: str = ""
    signal: str = "KILL"
    for_s: float | None = None
    latency_ms: float = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ChaosError(f"unknown action {self.action!r} (one of {', '.join(ACTIONS)})")
        if self.action != "heal" and not self.target:
            raise ChaosError(f"{self.action} needs a target")
        if self.signal not in SIGNALS:
            raise ChaosError(f"--signal must be one of {', '.join(SIGNALS)} (got {self.signal!r})")
        if self.for_s is not None and not (math.isfinite(self.for_s) and self.for_s > 0):
            raise ChaosError(f"--for must be a positive duration (got {self.for_s})")
        if self.for_s is not None and self.action in {"kill", "thaw", "heal"}:
            raise ChaosError(f"{self.action} is instant: it takes no --for")
        if not (math.isfinite(self.latency_ms) and self.latency_ms >= 0):
            raise ChaosError(f"--latency must not be negative (got {self.latency_ms} ms)")
        if not (math.isfinite(self.loss) and 0 <= self.loss < 1):
            raise ChaosError(f"--loss must be within [0%, 100%) (got {self.loss * 100:g}%)")
        if self.action == "wan" and self.latency_ms == 0 and self.loss == 0:
            raise ChaosError("wan needs --latency or --loss (or both)")

    @property
    def lasting(self) -> bool:
        """True when the fault stays in force until healed or expired (not instant)."""
        return self.action in {"freeze", "partition", "wan"}

    def describe(self) -> str:
        if self.action == "heal":
            return "heal every fault"
        words: list[str] = [self.action]
        if self.action == "kill":
            words.append(f"-{self.signal}")
        words.append(self.target)
        if self.action == "partition":
            words.append("from the control plane")
        if self.action == "wan":
            words.append(f"+{self.latency_ms:g} ms, {self.loss * 100:g}% loss")
        if self.for_s is not None:
            words.append(f"for {self.for_s:g}s")
        return " ".join(words)


def parse_loss(text: str) -> float:
    """``5%`` or ``0.05`` as a ratio."""
    value = text.strip()
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError as exc:
        raise ChaosError(f"--loss: {text!r} is not a share like 5% or 0.05") from exc


def parse_seconds(text: str, *, what: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ChaosError(f"{what}: {exc}") from exc


def resolve_processes(state: WorldState, target: str) -> list[ProcessEntry]:
    """The processes ``target`` names; a clear ChaosError listing what it could be."""
    names = [PROCESS_ALIASES.get(target, target), f"{NODE_PREFIX}{target}"]
    for name in names:
        entry = state.process(name)
        if entry is not None:
            return [entry]
    # A gateway id names the process that simulates it (with its region's other gateways).
    gateway = next((g for g in state.gateways if g.gateway_id == target), None)
    if gateway is not None and (entry := state.process(gateway.process)) is not None:
        return [entry]
    region_nodes = [node.node_id for node in state.edge_nodes if node.region == target]
    if region_nodes:
        return [entry for node_id in region_nodes if (entry := state.process(f"{NODE_PREFIX}{node_id}"))]
    if target == "broker":
        raise ChaosError("this world runs no MQTT broker")
    raise ChaosError(
        f"no process or region {target!r} in this world; targets: {', '.join(known_targets(state))}"
    )


def resolve_region(state: WorldState, target: str) -> str:
    """``target`` as a region with edge nodes (a network fault hits a region)."""
    regions = sorted({node.region for node in state.edge_nodes})
    if target in regions:
        return target
    node = next((node for node in state.edge_nodes if node.node_id == target), None)
    if node is not None:
        raise ChaosError(f"network faults hit a region: {target} is a node of {node.region}")
    raise ChaosError(f"no region {target!r} with edge nodes in this world; regions: {', '.join(regions)}")


def known_targets(state: WorldState) -> Sequence[str]:
    present = [alias for alias, name in PROCESS_ALIASES.items() if alias != name and state.process(name)]
    present = [name for name in ("control-plane", "fault-relay") if state.process(name)] + present
    nodes = [node.node_id for node in state.edge_nodes]
    regions = sorted({node.region for node in state.edge_nodes})
    gateways = [gateway.gateway_id for gateway in state.gateways]
    return [*present, *regions, *nodes, *gateways]
