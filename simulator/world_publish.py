"""Keeps ``.edgecdn/world.json`` true while the world runs.

``edgecdn up`` publishes the world's addresses once every process is ready; from then on
the supervisor calls :meth:`WorldStatePublisher.publish` whenever a child exits or comes
back, so the file always shows every process's current pid, state, restarts and last
exit (docs/world-state.md), which ``edgecdn status`` and ``edgecdn chaos`` read.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

from geo.world import World
from runtime.events import events_path
from runtime.world_state import EdgeNodeEntry, GatewayEntry, ProcessEntry, WorldState, write_world_state
from simulator.supervisor import RunningChild, Supervisor

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StartedWorld:
    """The addresses of a world whose processes are all ready."""

    control_plane_address: str
    router_url: str
    fault_relay_url: str
    edge_nodes: tuple[EdgeNodeEntry, ...]
    mqtt_url: str | None = None
    mqtt_protocol: str | None = None
    gateways: tuple[GatewayEntry, ...] = ()


def process_entry(child: RunningChild) -> ProcessEntry:
    return ProcessEntry(
        name=child.name,
        pid=child.pid,
        log=str(child.log_path),
        state=child.state,
        restarts=child.restarts,
        since=round(child.since, 3),
        last_exit=None if child.last_exit is None else child.last_exit.reason,
        addresses=dict(child.report.addresses),
    )


class WorldStatePublisher:
    """Writes world.json from the supervisor's children, once the world has started."""

    def __init__(self, state_file: Path) -> None:
        self._state_file = state_file
        self._state: WorldState | None = None
        self._supervisor: Supervisor | None = None

    def begin(
        self, *, world: World, supervisor: Supervisor, started: StartedWorld, tokens: dict[str, str]
    ) -> None:
        self._supervisor = supervisor
        self._state = WorldState(
            world_file=str(world.source),
            supervisor_pid=os.getpid(),
            control_plane_address=started.control_plane_address,
            router_url=started.router_url,
            edge_nodes=started.edge_nodes,
            tokens=tokens,
            fault_relay_url=started.fault_relay_url,
            events_file=str(events_path(self._state_file.parent)),
            mqtt_url=started.mqtt_url,
            mqtt_protocol=started.mqtt_protocol,
            gateways=started.gateways,
        )
        self.publish()

    def publish(self) -> None:
        """Write the current state (nothing before :meth:`begin` or after :meth:`end`)."""
        if self._state is None or self._supervisor is None:
            return
        state = replace(
            self._state, processes=tuple(process_entry(child) for child in self._supervisor.children)
        )
        try:
            write_world_state(self._state_file, state)
        except OSError as exc:  # the world keeps running; the tools see the previous state
            logger.warning("cannot update %s: %s", self._state_file, exc)

    def end(self) -> None:
        self._state = None
