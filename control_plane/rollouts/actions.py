"""Operator actions (pause, resume, promote, promote --all, abort): accepted with who and why, or
refused with a sentence that says why, never silently ignored."""

from __future__ import annotations

from dataclasses import replace
from typing import NoReturn

from control_plane.rollouts import wording
from control_plane.rollouts.errors import ActionRefusedError
from control_plane.rollouts.events import OperatorAction
from control_plane.rollouts.flow import State, Step, judge_wave, pass_wave, skipped_gate, start_rollback
from control_plane.rollouts.gates import NO_TRAFFIC, describe_figures
from control_plane.rollouts.model import ActionKind, ActionRecord, GateResult, Rollout

_VERB = {
    ActionKind.PAUSE: "pause",
    ActionKind.RESUME: "resume",
    ActionKind.PROMOTE: "promote",
    ActionKind.PROMOTE_ALL: "promote",
    ActionKind.ABORT: "abort",
}


def refuse_terminal(rollout: Rollout, action: OperatorAction) -> NoReturn:
    raise _refused(rollout, action, f"nothing to {_VERB[action.kind]}")


def apply(run: Step, action: OperatorAction) -> None:
    """Apply an operator action, or raise ``ActionRefusedError`` when it means nothing now."""
    _check_allowed(run, action)
    record = ActionRecord(at=run.now, kind=action.kind, actor=action.actor, reason=action.reason)
    run.rollout = replace(run.rollout, actions=(*run.rollout.actions, record))
    by = f"{action.actor or 'an operator'}{f' ({action.reason})' if action.reason else ''}"
    match action.kind:
        case ActionKind.PAUSE:
            _pause(run, by, action.actor)
        case ActionKind.RESUME:
            _resume(run, by, action.actor)
        case ActionKind.PROMOTE:
            pass_wave(run, _promoted(run, f"promoted by {by}"), action.actor)
        case ActionKind.PROMOTE_ALL:
            _promote_all(run, by, action.actor)
        case ActionKind.ABORT:
            if run.rollout.state is State.PENDING:
                run.transition(State.ABORTED, f"aborted by {by} before it started", action.actor)
            else:
                start_rollback(run, f"aborted by {by}", State.ABORTED, action.actor)


def _check_allowed(run: Step, action: OperatorAction) -> None:
    state, wave = run.rollout.state, run.rollout.wave
    verb = _VERB[action.kind]
    if state is State.PENDING and action.kind is not ActionKind.ABORT:
        raise _refused(run.rollout, action, f"not started yet: nothing to {verb}")
    if state is State.ROLLING_BACK:
        why = "already rolling back" if action.kind is ActionKind.ABORT else "a rollback always finishes"
        raise _refused(run.rollout, action, f"nothing to {verb}: {why}")
    match action.kind:
        case ActionKind.PAUSE if state is State.PAUSED:
            raise _refused(run.rollout, action, "already paused")
        case ActionKind.RESUME if state is not State.PAUSED:
            raise _refused(run.rollout, action, "not paused: nothing to resume")
        case ActionKind.PROMOTE if wave.state is not State.BAKING:
            raise _refused(
                run.rollout,
                action,
                f"{run.label} is still deploying: nothing to promote yet "
                "(promote --all skips every remaining judgement)",
            )
        case ActionKind.PROMOTE_ALL if run.rollout.skip_gates:
            raise _refused(run.rollout, action, "already promoted --all: no judgement left to skip")
        case _:
            pass


def _pause(run: Step, by: str, actor: str) -> None:
    wave = run.rollout.wave
    run.update_wave(bake_running_since=None)  # the step already folded the running time in
    if wave.state is State.BAKING:
        held = f"{run.label} bake held at {_progress(run)}"
    else:
        held = f"{run.label} still deploying; its bake waits for resume"
    run.transition(State.PAUSED, f"paused by {by}: {held}", actor)


def _resume(run: Step, by: str, actor: str) -> None:
    wave = run.rollout.wave
    if wave.state is State.BAKING and run.rollout.skip_gates:
        # ACKed while paused after promote --all: nothing to bake, go on.
        pass_wave(run, skipped_gate(run, f"resumed by {by}: {run.label} ACKed"), actor)
    elif wave.state is State.BAKING:
        run.update_wave(bake_running_since=run.now)
        run.transition(State.BAKING, f"resumed by {by}: {run.label} baking, {_progress(run)} done", actor)
        judge_wave(run)  # a bake already complete passes now
    else:
        run.transition(State.DEPLOYING, f"resumed by {by}: {run.label} deploying", actor)


def _promote_all(run: Step, by: str, actor: str) -> None:
    run.rollout = replace(run.rollout, skip_gates=True)
    if run.rollout.wave.state is State.BAKING:
        gate = _promoted(run, f"promoted --all by {by}")
        pass_wave(run, replace(gate, reason=f"{gate.reason}; every remaining judgement skipped"), actor)
    else:
        skipped = f"promoted --all by {by}: every remaining judgement skipped; {run.label} deploying"
        run.transition(State.DEPLOYING, skipped, actor)


def _promoted(run: Step, prefix: str) -> GateResult:
    figures = run.rollout.wave.figures
    seen = f" ({describe_figures(figures)})" if figures is not None else ""
    reason = f"{prefix}: {run.label} passed after {_progress(run)} bake{seen}"
    return GateResult(passed=True, figures=figures or NO_TRAFFIC, reason=reason)


def _progress(run: Step) -> str:
    wave = run.rollout.wave
    return f"{wording.seconds(wave.bake_elapsed_s)} of {wording.seconds(run.rollout.wave_spec.bake_s)}"


def _refused(rollout: Rollout, action: OperatorAction, reason: str) -> ActionRefusedError:
    return ActionRefusedError(
        rollout_id=rollout.id, state=rollout.state.value, action=action.kind.value, reason=reason
    )
