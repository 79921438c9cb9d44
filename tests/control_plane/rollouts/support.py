"""Builders for the rollout tests: a three-wave spec, a started rollout, and a way to run events."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from control_plane.rollouts import (
    ActionKind,
    Command,
    Event,
    GateLimits,
    OperatorAction,
    Rollout,
    RolloutSpec,
    RolloutState,
    Started,
    WaveSpec,
    new_rollout,
    step,
)

WAVES = (("ap-northeast-2",), ("ap-northeast-1", "ap-south-1"), ("eu-west-1",))
BEFORE = {"ap-northeast-2": "1.0.0", "ap-northeast-1": "1.0.0", "ap-south-1": "", "eu-west-1": "0.9.0"}
C = TypeVar("C", bound=Command)
LIMITS = GateLimits(max_error_rate=0.01, max_p99_ms=250, min_requests=50)


def make_spec(
    *,
    waves: Iterable[tuple[str, ...]] = WAVES,
    bake_s: float = 30.0,
    limits: GateLimits = LIMITS,
    progress_deadline_s: float = 60.0,
) -> RolloutSpec:
    return RolloutSpec(
        app="geo-hello",
        version="1.1.0",
        waves=tuple(WaveSpec(regions=regions, bake_s=bake_s) for regions in waves),
        limits=limits,
        progress_deadline_s=progress_deadline_s,
    )


def action(kind: ActionKind, actor: str = "alice", reason: str = "") -> OperatorAction:
    return OperatorAction(kind=kind, actor=actor, reason=reason)


@dataclass(slots=True)
class Driver:
    """Steps a rollout through events, keeping every command and the log for replays."""

    rollout: Rollout
    now: float = 0.0
    commands: list[Command] = field(default_factory=list)
    last: list[Command] = field(default_factory=list)
    log: list[tuple[Event, float]] = field(default_factory=list)

    def send(self, event: Event, *, at: float | None = None) -> list[Command]:
        if at is not None:
            self.now = at
        self.rollout, self.last = step(self.rollout, event, self.now)
        self.log.append((event, self.now))
        self.commands += self.last
        return self.last

    def of(self, kind: type[C]) -> list[C]:
        """The last step's commands of one kind."""
        return [command for command in self.last if isinstance(command, kind)]

    def state(self) -> RolloutState:
        # A call, not an attribute: mypy would keep an attribute narrowed across ``send``.
        return self.rollout.state


def started(spec: RolloutSpec | None = None, *, now: float = 0.0) -> Driver:
    driver = Driver(new_rollout(rollout_id="r-3", spec=spec or make_spec(), now=now), now=now)
    driver.send(Started(previous_versions=BEFORE))
    return driver
