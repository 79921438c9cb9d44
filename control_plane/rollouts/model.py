"""The rollout's values: spec, per-wave status, history, and the ``Rollout`` the machine steps.

Everything here is frozen and JSON-safe through ``to_dict``/``from_dict``: the store persists a
``Rollout`` as one JSON document per change, and a restarted control plane reads it back
unchanged. Times are seconds since the epoch (floats), given by the caller's clock.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from control_plane.rollouts import wording
from control_plane.rollouts.errors import RolloutSpecError
from control_plane.rollouts.gates import Figures, GateLimits

DEFAULT_PROGRESS_DEADLINE_S = 60.0
SYSTEM_ACTOR = "system"
NOTHING = ""  # the "version" of a region that ran no version of the app
_SHA256 = re.compile(r"[0-9a-f]{64}")


class RolloutState(enum.StrEnum):
    """States of a rollout (as in rollouts.proto); a wave's state uses the same words."""

    PENDING = "pending"
    DEPLOYING = "deploying"
    BAKING = "baking"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({RolloutState.SUCCEEDED, RolloutState.ROLLED_BACK, RolloutState.ABORTED})


class ActionKind(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    PROMOTE_ALL = "promote_all"
    ABORT = "abort"


@dataclass(frozen=True, slots=True, kw_only=True)
class WaveSpec:
    regions: tuple[str, ...]
    bake_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"regions": list(self.regions), "bake_s": self.bake_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WaveSpec:
        return cls(regions=tuple(str(r) for r in data["regions"]), bake_s=float(data["bake_s"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutSpec:
    """What to roll out and how; validated on construction, so a bad spec never exists."""

    app: str
    version: str
    waves: tuple[WaveSpec, ...]
    limits: GateLimits = field(default_factory=GateLimits)
    progress_deadline_s: float = DEFAULT_PROGRESS_DEADLINE_S
    # The IoT gateways' telemetry module (sha256) that moves with each wave's regions; "":
    # gateways are not part of this rollout. With an empty app, only gateways move.
    gateway_module: str = ""

    def __post_init__(self) -> None:
        validate_spec(self)

    @property
    def label(self) -> str:
        """``geo-hello@1.2.0``, ``geo-hello@1.2.0 + gateway module 3f2a9c1d``, ``gateway module 3f2a9c1d``."""
        module = f"gateway module {self.gateway_module[:8]}" if self.gateway_module else ""
        app = f"{self.app}@{self.version}" if self.app else ""
        return " + ".join(part for part in (app, module) if part)

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "version": self.version,
            "waves": [wave.to_dict() for wave in self.waves],
            "limits": self.limits.to_dict(),
            "progress_deadline_s": self.progress_deadline_s,
            "gateway_module": self.gateway_module,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutSpec:
        return cls(
            app=str(data["app"]),
            version=str(data["version"]),
            waves=tuple(WaveSpec.from_dict(wave) for wave in data["waves"]),
            limits=GateLimits.from_dict(data["limits"]),
            progress_deadline_s=float(data["progress_deadline_s"]),
            gateway_module=str(data.get("gateway_module", "")),  # absent before gateways rolled out
        )


def validate_spec(spec: RolloutSpec) -> None:
    """Refuse a spec the machine could not run: no waves, empty or repeated regions, bad times.

    Limits validate themselves (``GateLimits``); regions unknown to the world are refused by
    ``parse_waves``, which knows them.
    """
    if spec.gateway_module and not _SHA256.fullmatch(spec.gateway_module):
        raise RolloutSpecError(
            field="gateway_module", reason="must be a module's sha256: 64 lower-case hex digits"
        )
    if not spec.app.strip() and not spec.version.strip():
        if not spec.gateway_module:
            raise RolloutSpecError(
                field="app", reason="an app version (NAME@VERSION), a gateway module, or both, are needed"
            )
    elif not spec.app.strip() or not spec.version.strip():
        raise RolloutSpecError(field="app", reason="an app name and a version are needed (NAME@VERSION)")
    if not spec.waves:
        raise RolloutSpecError(field="waves", reason="a rollout needs at least one wave")
    seen: dict[str, int] = {}
    for number, wave in enumerate(spec.waves, start=1):
        if not wave.regions:
            raise RolloutSpecError(field="waves", reason=f"wave {number} has no region")
        for region in wave.regions:
            if not region.strip():
                raise RolloutSpecError(field="waves", reason=f"wave {number} has an empty region name")
            if region in seen:
                raise RolloutSpecError(
                    field="waves", reason=f"region {region} is in wave {seen[region]} and wave {number}"
                )
            seen[region] = number
        if not math.isfinite(wave.bake_s) or wave.bake_s < 0:
            raise RolloutSpecError(
                field="bake", reason=f"wave {number}: bake must be >= 0 s, not {wave.bake_s}"
            )
    if not math.isfinite(spec.progress_deadline_s) or spec.progress_deadline_s <= 0:
        raise RolloutSpecError(
            field="progress_deadline", reason=f"must be > 0 s, not {spec.progress_deadline_s}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    """The gate's verdict on a wave, once judged (or skipped by a promotion)."""

    passed: bool
    figures: Figures
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "figures": self.figures.to_dict(), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        return cls(
            passed=bool(data["passed"]),
            figures=Figures.from_dict(data["figures"]),
            reason=str(data["reason"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WaveStatus:
    """How one wave goes. The bake clock is ``bake_elapsed_s`` plus, while it runs, the time since
    ``bake_running_since``; pausing folds the running part in and stops it."""

    index: int
    state: RolloutState = RolloutState.PENDING
    started_at: float | None = None
    deployed_at: float | None = None
    deadline_at: float | None = None
    expected_nodes: tuple[str, ...] | None = None  # None until the adapter reports progress
    acked_nodes: tuple[str, ...] = ()
    bake_elapsed_s: float = 0.0
    bake_running_since: float | None = None
    figures: Figures | None = None  # the latest figures of the bake, for the live view
    baseline: Figures | None = None
    gate: GateResult | None = None

    def bake_elapsed_at(self, now: float) -> float:
        running = now - self.bake_running_since if self.bake_running_since is not None else 0.0
        return self.bake_elapsed_s + max(running, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "state": self.state.value,
            "started_at": self.started_at,
            "deployed_at": self.deployed_at,
            "deadline_at": self.deadline_at,
            "expected_nodes": None if self.expected_nodes is None else list(self.expected_nodes),
            "acked_nodes": list(self.acked_nodes),
            "bake_elapsed_s": self.bake_elapsed_s,
            "bake_running_since": self.bake_running_since,
            "figures": None if self.figures is None else self.figures.to_dict(),
            "baseline": None if self.baseline is None else self.baseline.to_dict(),
            "gate": None if self.gate is None else self.gate.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WaveStatus:
        expected = data["expected_nodes"]
        return cls(
            index=int(data["index"]),
            state=RolloutState(data["state"]),
            started_at=_opt_float(data["started_at"]),
            deployed_at=_opt_float(data["deployed_at"]),
            deadline_at=_opt_float(data["deadline_at"]),
            expected_nodes=None if expected is None else tuple(str(n) for n in expected),
            acked_nodes=tuple(str(n) for n in data["acked_nodes"]),
            bake_elapsed_s=float(data["bake_elapsed_s"]),
            bake_running_since=_opt_float(data["bake_running_since"]),
            figures=None if data["figures"] is None else Figures.from_dict(data["figures"]),
            baseline=None if data["baseline"] is None else Figures.from_dict(data["baseline"]),
            gate=None if data["gate"] is None else GateResult.from_dict(data["gate"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """One change of the rollout's state (or of its current wave), with who did it and why."""

    at: float
    wave: int
    from_state: RolloutState
    to_state: RolloutState
    reason: str
    actor: str = SYSTEM_ACTOR

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "wave": self.wave,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "reason": self.reason,
            "actor": self.actor,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transition:
        return cls(
            at=float(data["at"]),
            wave=int(data["wave"]),
            from_state=RolloutState(data["from_state"]),
            to_state=RolloutState(data["to_state"]),
            reason=str(data["reason"]),
            actor=str(data["actor"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRecord:
    """An operator action the machine accepted: who and why."""

    at: float
    kind: ActionKind
    actor: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind.value, "actor": self.actor, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionRecord:
        return cls(
            at=float(data["at"]),
            kind=ActionKind(data["kind"]),
            actor=str(data["actor"]),
            reason=str(data["reason"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RollbackStatus:
    """A rollback in progress: what each touched region gets back, and which have not ACKed yet."""

    outcome: RolloutState  # ROLLED_BACK, or ABORTED when an operator asked for it
    cause: str
    targets: Mapping[str, str]  # region -> version to restore, NOTHING to clear the app
    pending: tuple[str, ...]
    retry_at: float  # when to re-send the Restore of the regions still pending

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", _frozen(self.targets))

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "cause": self.cause,
            "targets": dict(self.targets),
            "pending": list(self.pending),
            "retry_at": self.retry_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RollbackStatus:
        return cls(
            outcome=RolloutState(data["outcome"]),
            cause=str(data["cause"]),
            targets={str(k): str(v) for k, v in data["targets"].items()},
            pending=tuple(str(r) for r in data["pending"]),
            retry_at=float(data["retry_at"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Rollout:
    """A rollout as the machine sees it. ``clock_at`` is the latest time the machine was given;
    the time between it and a ``Resumed`` is the control plane's downtime, which neither the bake
    clock nor the progress deadline counts."""

    id: str
    spec: RolloutSpec
    state: RolloutState = RolloutState.PENDING
    current_wave: int = 0
    waves: tuple[WaveStatus, ...] = ()
    initial_versions: Mapping[str, str] = field(default_factory=dict)  # every spec region, at start
    previous_versions: Mapping[str, str] = field(default_factory=dict)  # touched regions only
    # "region/gateway_id" -> the module it ran at start (spec.gateway_module set): what a
    # rollback puts back on each gateway of a touched region.
    gateway_modules_before: Mapping[str, str] = field(default_factory=dict)
    skip_gates: bool = False  # promote --all: every remaining judgement skipped
    rollback: RollbackStatus | None = None
    message: str = ""
    history: tuple[Transition, ...] = ()
    actions: tuple[ActionRecord, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0
    clock_at: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "initial_versions", _frozen(self.initial_versions))
        object.__setattr__(self, "previous_versions", _frozen(self.previous_versions))
        object.__setattr__(self, "gateway_modules_before", _frozen(self.gateway_modules_before))

    @property
    def wave(self) -> WaveStatus:
        """The current wave's status."""
        return self.waves[self.current_wave]

    @property
    def wave_spec(self) -> WaveSpec:
        return self.spec.waves[self.current_wave]

    def with_wave(self, status: WaveStatus) -> Rollout:
        waves = list(self.waves)
        waves[status.index] = status
        return replace(self, waves=tuple(waves))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec.to_dict(),
            "state": self.state.value,
            "current_wave": self.current_wave,
            "waves": [wave.to_dict() for wave in self.waves],
            "initial_versions": dict(self.initial_versions),
            "previous_versions": dict(self.previous_versions),
            "gateway_modules_before": dict(self.gateway_modules_before),
            "skip_gates": self.skip_gates,
            "rollback": None if self.rollback is None else self.rollback.to_dict(),
            "message": self.message,
            "history": [transition.to_dict() for transition in self.history],
            "actions": [action.to_dict() for action in self.actions],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "clock_at": self.clock_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollout:
        return cls(
            id=str(data["id"]),
            spec=RolloutSpec.from_dict(data["spec"]),
            state=RolloutState(data["state"]),
            current_wave=int(data["current_wave"]),
            waves=tuple(WaveStatus.from_dict(wave) for wave in data["waves"]),
            initial_versions=_str_map(data["initial_versions"]),
            previous_versions=_str_map(data["previous_versions"]),
            gateway_modules_before=_str_map(data.get("gateway_modules_before", {})),
            skip_gates=bool(data["skip_gates"]),
            rollback=None if data["rollback"] is None else RollbackStatus.from_dict(data["rollback"]),
            message=str(data["message"]),
            history=tuple(Transition.from_dict(t) for t in data["history"]),
            actions=tuple(ActionRecord.from_dict(a) for a in data["actions"]),
            created_at=float(data["created_at"]),
            updated_at=float(data["updated_at"]),
            clock_at=float(data["clock_at"]),
        )


def new_rollout(*, rollout_id: str, spec: RolloutSpec, now: float) -> Rollout:
    """A pending rollout; the adapter then sends ``Started`` with what every region runs."""
    return Rollout(
        id=rollout_id,
        spec=spec,
        waves=tuple(WaveStatus(index=i) for i in range(len(spec.waves))),
        message=f"{spec.label}: accepted, {wording.plural(len(spec.waves), 'wave')}",
        created_at=now,
        updated_at=now,
        clock_at=now,
    )


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    # A frozen value must not be changed through a dict it holds.
    return MappingProxyType(dict(mapping))


def _str_map(data: Mapping[str, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in data.items()}


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
