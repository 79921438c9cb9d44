"""What the machine is told (events) and what it asks for (commands); plain frozen values.

The adapter turns what it sees (fleet ACKs, statistics, its timer, operators, a restart) into
events, and carries out the commands the machine returns, in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from control_plane.rollouts.gates import Figures
from control_plane.rollouts.model import ActionKind, Transition

# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    """Start a pending rollout; ``previous_versions`` says what every region of every wave runs
    now (region -> app version, "" for none). Captured per wave as it deploys, restored on rollback."""

    previous_versions: Mapping[str, str]
    # "region/gateway_id" -> module sha256 of every gateway in the spec's regions (gateway rollouts).
    previous_gateway_modules: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class WaveProgress:
    """Where the wave's deploy stands: the nodes that must ACK, and those that have."""

    wave: int
    expected: tuple[str, ...]
    acked: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class WaveAcked:
    """Every node of the wave runs the version (shorthand for a complete ``WaveProgress``)."""

    wave: int
    node_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Nacked:
    """A node of the wave refused the version."""

    wave: int
    node_id: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GateFigures:
    """Fresh figures of the wave's regions since its bake started, and of the regions not rolled yet."""

    wave: int
    figures: Figures
    baseline: Figures | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """The clock moved: deadlines and bake completion are judged on it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OperatorAction:
    kind: ActionKind
    actor: str
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreAcked:
    """These regions run their previous version again."""

    regions: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreFailed:
    region: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """The control plane restarted with this rollout loaded from the store."""


Event = (
    Started
    | WaveProgress
    | WaveAcked
    | Nacked
    | GateFigures
    | Tick
    | OperatorAction
    | RestoreAcked
    | RestoreFailed
    | Resumed
)

# --- commands --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Deploy:
    """Assign ``app@version`` to every node of these regions; report with ``WaveProgress``."""

    wave: int
    regions: tuple[str, ...]
    app: str
    version: str
    gateway_module: str = ""  # also move these regions' gateways to this module ("" : not)


@dataclass(frozen=True, slots=True, kw_only=True)
class Restore:
    """Put each region back on its previous version ("" : remove the app from the region);
    report with ``RestoreAcked`` / ``RestoreFailed``."""

    versions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """Persist this transition (the returned ``Rollout`` already holds it in its history)."""

    transition: Transition


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify:
    """Tell watchers and the log, in a sentence."""

    message: str


Command = Deploy | Restore | Record | Notify
