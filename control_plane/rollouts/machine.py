"""The rollout state machine: ``step(rollout, event, now) -> (rollout, commands)``; pure and synchronous.

One wave at a time: deploy its regions, wait until every node ACKs (within the progress
deadline), bake while the gate judges the figures, then the next wave. A failed gate, a NACK
or a missed deadline rolls every touched region back to exactly what it ran before; an
operator's abort does too, and ends in ``aborted``. The same events at the same times give
the same rollout, so a store can replay or reload it; no clock is read here, ``now`` is given.
"""

from __future__ import annotations

from dataclasses import replace

from control_plane.rollouts import actions, wording
from control_plane.rollouts.errors import EventRefusedError
from control_plane.rollouts.events import (
    Command,
    Event,
    GateFigures,
    Nacked,
    Notify,
    OperatorAction,
    Restore,
    RestoreAcked,
    RestoreFailed,
    Resumed,
    Started,
    Tick,
    WaveAcked,
    WaveProgress,
)
from control_plane.rollouts.flow import (
    ACTIVE,
    State,
    Step,
    bake_text,
    deploy_command,
    deploy_wave,
    describe,
    judge_wave,
    pass_wave,
    skipped_gate,
    start_rollback,
)
from control_plane.rollouts.model import Rollout

# After a refused restore, try again soon: a rollback must finish, but not in a hot loop.
RESTORE_RETRY_S = 5.0
# A deadline message names this many nodes at most; a thousand names help nobody.
MAX_NAMED_NODES = 10


def step(rollout: Rollout, event: Event, now: float) -> tuple[Rollout, list[Command]]:
    """Apply one event at time ``now``; return the new rollout and the commands to carry out, in order.

    Raises ``ActionRefusedError`` for an operator action that means nothing in this state and
    ``EventRefusedError`` for an event the adapter must not send (a second ``Started``).
    Stale events (about another wave) and events in a terminal state change nothing.
    """
    if rollout.state.terminal:
        return _in_terminal(rollout, event)
    # Wall clocks can step back; the machine's time never does, so no duration goes negative.
    now = max(now, rollout.clock_at)
    if isinstance(event, Resumed):
        return resumed(rollout, now)
    run = Step(rollout=_fold_bake_clock(rollout, now), now=now)
    _dispatch(run, event)
    return run.rollout, run.commands


def _in_terminal(rollout: Rollout, event: Event) -> tuple[Rollout, list[Command]]:
    """A finished rollout stays finished: actions are refused, a start too, the rest changes nothing."""
    if isinstance(event, OperatorAction):
        actions.refuse_terminal(rollout, event)
    if isinstance(event, Started):
        raise EventRefusedError(rollout_id=rollout.id, event="start", reason=f"it is {rollout.state}")
    return rollout, []


def _dispatch(run: Step, event: Event) -> None:
    match event:
        case Started():
            _on_started(run, event)
        case WaveProgress():
            _on_progress(run, event.wave, event.expected, event.acked)
        case WaveAcked():
            _on_progress(run, event.wave, event.node_ids, event.node_ids)
        case Nacked():
            _on_nacked(run, event)
        case GateFigures():
            _on_figures(run, event)
        case Tick():
            _on_tick(run)
        case OperatorAction():
            actions.apply(run, event)
        case RestoreAcked():
            _on_restore_acked(run, event)
        case RestoreFailed():
            _on_restore_failed(run, event)
        case Resumed():
            pass  # handled before the clock is folded: the downtime must not count


def _fold_bake_clock(rollout: Rollout, now: float) -> Rollout:
    """Move the running bake time into ``bake_elapsed_s``, so a stored rollout says how far it got."""
    rollout = replace(rollout, clock_at=now)
    wave = rollout.waves[rollout.current_wave]
    if wave.bake_running_since is None:
        return rollout
    return rollout.with_wave(replace(wave, bake_elapsed_s=wave.bake_elapsed_at(now), bake_running_since=now))


def resumed(rollout: Rollout, now: float) -> tuple[Rollout, list[Command]]:
    """After a restart: the downtime counts neither towards the bake nor the deadlines; re-send
    what is in flight (the current wave's deploy if it is not ACKed, the restores not ACKed)."""
    downtime = now - rollout.clock_at
    run = Step(rollout=replace(rollout, clock_at=now), now=now)
    wave = run.rollout.wave
    if wave.bake_running_since is not None:
        run.update_wave(bake_running_since=now)
    if wave.deadline_at is not None:
        run.update_wave(deadline_at=wave.deadline_at + downtime)
    back = run.rollout.rollback
    if run.rollout.state is State.ROLLING_BACK and back is not None:
        run.rollout = replace(run.rollout, rollback=replace(back, retry_at=back.retry_at + downtime))
        run.commands.append(Restore(versions={region: back.targets[region] for region in back.pending}))
        run.commands.append(
            Notify(message=f"control plane restarted: still restoring {wording.names(back.pending)}")
        )
    elif run.rollout.state in ACTIVE and wave.state is State.DEPLOYING:
        run.commands.append(deploy_command(run.rollout))
        run.commands.append(Notify(message=f"control plane restarted: deploying {run.label} again"))
    elif run.rollout.state in ACTIVE:
        held = "" if wave.bake_running_since is not None else " (paused)"
        done = f"{wording.seconds(wave.bake_elapsed_s)} of {wording.seconds(run.rollout.wave_spec.bake_s)}"
        run.commands.append(Notify(message=f"control plane restarted: {run.label} baking{held}, {done} done"))
    return run.rollout, run.commands


def _on_started(run: Step, event: Started) -> None:
    rollout = run.rollout
    if rollout.state is not State.PENDING:
        raise EventRefusedError(rollout_id=rollout.id, event="start", reason=f"it is already {rollout.state}")
    regions = [region for wave in rollout.spec.waves for region in wave.regions]
    missing = [region for region in regions if region not in event.previous_versions]
    if missing:
        raise EventRefusedError(
            rollout_id=rollout.id,
            event="start",
            reason=f"no previous version given for {wording.names(missing)}",
        )
    run.rollout = replace(
        rollout,
        initial_versions={region: event.previous_versions[region] for region in regions},
        gateway_modules_before=dict(event.previous_gateway_modules),
    )
    waves = wording.plural(len(rollout.spec.waves), "wave")
    deploy_wave(run, 0, f"{rollout.spec.label}: {waves}")


def _is_current(run: Step, wave: int, *wave_states: State) -> bool:
    """Whether an event about ``wave`` concerns the wave in progress (else it is stale)."""
    rollout = run.rollout
    return rollout.state in ACTIVE and wave == rollout.current_wave and rollout.wave.state in wave_states


def _on_progress(run: Step, wave: int, expected: tuple[str, ...], acked: tuple[str, ...]) -> None:
    if not _is_current(run, wave, State.DEPLOYING):
        return
    expected_nodes, acked_nodes = tuple(sorted(set(expected))), tuple(sorted(set(acked)))
    run.update_wave(expected_nodes=expected_nodes, acked_nodes=acked_nodes)
    # No expected node (a region being built) means nothing to wait for.
    if set(expected_nodes) <= set(acked_nodes):
        _wave_deployed(run, len(expected_nodes))


def _wave_deployed(run: Step, nodes: int) -> None:
    if nodes == 0:
        acked = f"{run.label}: no node in its regions yet, none to wait for"
    else:
        acked = f"{run.label}: {'all ' if nodes > 1 else ''}{wording.plural(nodes, 'node')} ACKed"
    run.update_wave(state=State.BAKING, deployed_at=run.now, deadline_at=None)
    if run.rollout.state is State.PAUSED:
        later = "the next wave follows" if run.rollout.skip_gates else f"the {bake_text(run)} bake starts"
        run.say(f"{acked}; {later} on resume")
        return
    if run.rollout.skip_gates:
        pass_wave(run, skipped_gate(run, acked))
        return
    run.update_wave(bake_elapsed_s=0.0, bake_running_since=run.now)
    run.transition(State.BAKING, f"{acked}; baking for {bake_text(run)}")
    judge_wave(run)


def _on_nacked(run: Step, event: Nacked) -> None:
    if _is_current(run, event.wave, State.DEPLOYING, State.BAKING):
        start_rollback(run, f"{run.label}: node {event.node_id} NACKed: {event.error}", State.ROLLED_BACK)


def _on_figures(run: Step, event: GateFigures) -> None:
    if _is_current(run, event.wave, State.BAKING):
        run.update_wave(figures=event.figures, baseline=event.baseline)
        judge_wave(run)


def _on_tick(run: Step) -> None:
    rollout = run.rollout
    wave = rollout.wave
    if rollout.state in ACTIVE and wave.state is State.DEPLOYING:
        if wave.deadline_at is not None and run.now >= wave.deadline_at:
            start_rollback(run, _deadline_cause(run), State.ROLLED_BACK)
    elif rollout.state in ACTIVE:
        judge_wave(run)
    elif rollout.state is State.ROLLING_BACK and rollout.rollback is not None:
        back = rollout.rollback
        if back.pending and run.now >= back.retry_at:
            deadline = rollout.spec.progress_deadline_s
            run.rollout = replace(rollout, rollback=replace(back, retry_at=run.now + deadline))
            run.commands.append(Restore(versions={region: back.targets[region] for region in back.pending}))
            run.say(f"restore of {wording.names(back.pending)} not ACKed yet: sending it again")


def _deadline_cause(run: Step) -> str:
    wave = run.rollout.wave
    within = f"within the {wording.seconds(run.rollout.spec.progress_deadline_s)} progress deadline"
    if wave.expected_nodes is None:
        return f"{run.label}: no deploy progress reported {within}"
    missing = [node for node in wave.expected_nodes if node not in wave.acked_nodes]
    named = wording.names(missing[:MAX_NAMED_NODES])
    if len(missing) > MAX_NAMED_NODES:
        named += f" and {len(missing) - MAX_NAMED_NODES} more"
    acked = len(wave.expected_nodes) - len(missing)
    return (
        f"{run.label}: node{'s' if len(missing) > 1 else ''} {named} did not ACK {within} "
        f"({acked} of {len(wave.expected_nodes)} ACKed)"
    )


def _on_restore_acked(run: Step, event: RestoreAcked) -> None:
    back = run.rollout.rollback
    if run.rollout.state is not State.ROLLING_BACK or back is None:
        return
    done = [region for region in back.pending if region in event.regions]
    if not done:
        return
    pending = tuple(region for region in back.pending if region not in event.regions)
    run.rollout = replace(run.rollout, rollback=replace(back, pending=pending))
    if pending:
        run.say(f"restored {wording.names(done)}; waiting for {wording.names(pending)}")
        return
    waves = tuple(
        replace(wave, state=State.ROLLED_BACK) if wave.state is State.ROLLING_BACK else wave
        for wave in run.rollout.waves
    )
    run.rollout = replace(run.rollout, waves=waves)
    run.transition(back.outcome, f"{back.cause}: rolled back, {describe(back.targets, 'on')} again")


def _on_restore_failed(run: Step, event: RestoreFailed) -> None:
    back = run.rollout.rollback
    if run.rollout.state is not State.ROLLING_BACK or back is None or event.region not in back.pending:
        return
    retry_at = min(back.retry_at, run.now + RESTORE_RETRY_S)
    run.rollout = replace(run.rollout, rollback=replace(back, retry_at=retry_at))
    version = back.targets[event.region] or "nothing"
    run.say(
        f"restoring {event.region} to {version} failed: {event.error}; "
        f"trying again in {wording.seconds(retry_at - run.now)}"
    )
