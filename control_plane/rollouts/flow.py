"""The moves the machine and the operator actions share: deploy a wave, judge it, pass it, roll back.

``Step`` carries the rollout as one ``step`` changes it, and the commands produced so far; each
move here changes it through ``transition`` (recorded, with who and why) or ``say`` (a message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from control_plane.rollouts import wording
from control_plane.rollouts.events import Command, Deploy, Notify, Record, Restore
from control_plane.rollouts.gates import NO_TRAFFIC, ROLLING_BACK, Fail, Pass, judge
from control_plane.rollouts.model import (
    SYSTEM_ACTOR,
    ActionKind,
    GateResult,
    RollbackStatus,
    Rollout,
    RolloutState,
    Transition,
)

State = RolloutState
ACTIVE = frozenset({State.DEPLOYING, State.BAKING, State.PAUSED})


@dataclass(slots=True, kw_only=True)
class Step:
    """The rollout as one step changes it, and the commands it produced so far."""

    rollout: Rollout
    now: float
    commands: list[Command] = field(default_factory=list)

    @property
    def label(self) -> str:
        return label_of(self.rollout, self.rollout.current_wave)

    def transition(self, to_state: State, reason: str, actor: str = SYSTEM_ACTOR) -> None:
        current = self.rollout
        change = Transition(
            at=self.now,
            wave=current.current_wave,
            from_state=current.state,
            to_state=to_state,
            reason=reason,
            actor=actor,
        )
        self.rollout = replace(
            current, state=to_state, message=reason, history=(*current.history, change), updated_at=self.now
        )
        self.commands += [Record(transition=change), Notify(message=reason)]

    def say(self, message: str) -> None:
        self.rollout = replace(self.rollout, message=message, updated_at=self.now)
        self.commands.append(Notify(message=message))

    def update_wave(self, **changes: Any) -> None:
        self.rollout = self.rollout.with_wave(replace(self.rollout.wave, **changes))


def label_of(rollout: Rollout, index: int) -> str:
    return wording.wave_label(index, rollout.spec.waves[index].regions)


def deploy_wave(run: Step, index: int, why: str, actor: str = SYSTEM_ACTOR) -> None:
    """Start the wave's deploy: its regions' versions join what a rollback restores first."""
    rollout = run.rollout
    regions = rollout.spec.waves[index].regions
    previous = {
        **rollout.previous_versions,
        **{region: rollout.initial_versions[region] for region in regions},
    }
    run.rollout = replace(rollout, current_wave=index, previous_versions=previous)
    run.update_wave(
        state=State.DEPLOYING, started_at=run.now, deadline_at=run.now + rollout.spec.progress_deadline_s
    )
    run.transition(State.DEPLOYING, f"{why}; deploying {run.label}", actor)
    run.commands.append(deploy_command(run.rollout))


def deploy_command(rollout: Rollout) -> Deploy:
    return Deploy(
        wave=rollout.current_wave,
        regions=rollout.wave_spec.regions,
        app=rollout.spec.app,
        version=rollout.spec.version,
        gateway_module=rollout.spec.gateway_module,
    )


def judge_wave(run: Step) -> None:
    """Judge the baking wave on its latest figures; while paused only a failure counts, since a
    pause must not keep a broken version serving clients."""
    rollout = run.rollout
    wave = rollout.wave
    if wave.state is not State.BAKING or rollout.state not in ACTIVE:
        return
    verdict = judge(
        rollout.spec.limits,
        wave.figures or NO_TRAFFIC,
        wave.baseline,
        bake_elapsed_s=wave.bake_elapsed_s,
        bake_s=rollout.wave_spec.bake_s,
        wave_label=run.label,
    )
    if isinstance(verdict, Fail):
        run.update_wave(gate=GateResult(passed=False, figures=verdict.figures, reason=verdict.reason))
        start_rollback(run, verdict.reason.removesuffix(ROLLING_BACK), State.ROLLED_BACK)
    elif isinstance(verdict, Pass) and rollout.state is State.BAKING:
        pass_wave(run, GateResult(passed=True, figures=verdict.figures, reason=verdict.reason))


def skipped_gate(run: Step, what: str) -> GateResult:
    """The gate of a wave deployed after ``promote --all``: passed without a judgement."""
    promoter = next((a.actor for a in reversed(run.rollout.actions) if a.kind is ActionKind.PROMOTE_ALL), "")
    reason = f"{what}; judgement skipped (promoted --all by {promoter or 'an operator'})"
    return GateResult(passed=True, figures=NO_TRAFFIC, reason=reason)


def bake_text(run: Step) -> str:
    return wording.seconds(run.rollout.wave_spec.bake_s)


def pass_wave(run: Step, gate: GateResult, actor: str = SYSTEM_ACTOR) -> None:
    run.update_wave(state=State.SUCCEEDED, gate=gate, bake_running_since=None)
    advance(run, gate.reason, actor)


def advance(run: Step, why: str, actor: str = SYSTEM_ACTOR) -> None:
    """The current wave passed: deploy the next one, or finish."""
    rollout = run.rollout
    if rollout.current_wave + 1 < len(rollout.spec.waves):
        deploy_wave(run, rollout.current_wave + 1, why, actor)
        return
    done = f"{rollout.spec.label} runs in every wave's regions"
    run.transition(State.SUCCEEDED, f"{why}; {done}", actor)


def start_rollback(run: Step, cause: str, outcome: State, actor: str = SYSTEM_ACTOR) -> None:
    """Restore exactly the previous version of every touched region, and wait for their ACKs."""
    rollout = run.rollout
    targets = dict(rollout.previous_versions)
    waves = tuple(
        replace(wave, state=State.ROLLING_BACK, bake_running_since=None, deadline_at=None)
        if wave.state in {State.DEPLOYING, State.BAKING, State.SUCCEEDED}
        else wave
        for wave in rollout.waves
    )
    back = RollbackStatus(
        outcome=outcome,
        cause=cause,
        targets=targets,
        pending=tuple(sorted(targets)),
        retry_at=run.now + rollout.spec.progress_deadline_s,
    )
    run.rollout = replace(rollout, waves=waves, rollback=back)
    run.transition(State.ROLLING_BACK, f"{cause}{ROLLING_BACK} {describe(targets, 'to')}", actor)
    run.commands.append(Restore(versions=targets))


def describe(targets: Mapping[str, str], preposition: str) -> str:
    """``ap-northeast-2 to 1.0.0, ap-south-1 to nothing``."""
    return wording.names(
        [f"{region} {preposition} {version or 'nothing'}" for region, version in sorted(targets.items())]
    )
