"""Hypothesis drives the machine with random events and checks what must always hold.

Never two waves at once; a rollback restores exactly the previous versions of the touched
regions; terminal states stay terminal; a pause stops the bake clock; stale events change
nothing; a restart (store, reload, ``Resumed``) equals no restart; replaying the log gives the
same rollout; every rollout survives JSON.
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from control_plane.rollouts import (
    ActionKind,
    Command,
    Deploy,
    Event,
    Figures,
    GateFigures,
    GateLimits,
    Nacked,
    OperatorAction,
    Restore,
    RestoreAcked,
    RestoreFailed,
    Resumed,
    Rollout,
    RolloutError,
    RolloutSpec,
    RolloutState,
    Started,
    Tick,
    WaveAcked,
    WaveProgress,
    WaveSpec,
    new_rollout,
    step,
)

S = RolloutState
REGIONS = ("r1", "r2", "r3", "r4")
IN_FLIGHT = {S.DEPLOYING, S.BAKING}


@st.composite
def specs(draw: st.DrawFn) -> RolloutSpec:
    order = draw(st.permutations(REGIONS))
    cuts = sorted(draw(st.sets(st.integers(1, len(REGIONS) - 1), min_size=1, max_size=2)))
    bounds = [0, *cuts, draw(st.integers(max(cuts, default=0) + 1, len(REGIONS)))]
    waves = tuple(
        WaveSpec(regions=tuple(order[a:b]), bake_s=draw(st.sampled_from([0.0, 5.0, 12.5, 30.0])))
        for a, b in itertools.pairwise(bounds)
    )
    limits = GateLimits(
        max_error_rate=draw(st.sampled_from([0.01, 0.5])),
        max_p99_ms=draw(st.sampled_from([0.0, 250.0])),
        min_requests=draw(st.integers(0, 60)),
        require_traffic=draw(st.booleans()),
        max_error_increase=draw(st.sampled_from([None, 0.005])),
    )
    deadline = draw(st.sampled_from([30.0, 60.0]))
    return RolloutSpec(app="app", version="2", waves=waves, limits=limits, progress_deadline_s=deadline)


@st.composite
def figures(draw: st.DrawFn) -> Figures:
    requests = draw(st.integers(0, 400))
    errors = draw(st.sampled_from([0, 0, requests // 100, requests // 2, requests]))
    return Figures(requests=requests, errors=errors, p99_ms=draw(st.floats(1, 500)) if requests else None)


def nodes(wave: int) -> tuple[str, ...]:
    return (f"w{wave}-a", f"w{wave}-b")


def fold_insensitive(rollout: Rollout) -> list[object]:
    """What an event may change, without the bake clock's bookkeeping."""
    return [(w.state, w.gate, w.acked_nodes, w.expected_nodes, w.figures) for w in rollout.waves]


class RolloutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.log: list[tuple[Event, float]] = []
        self.deployed: dict[int, int] = {}  # wave -> Deploy commands seen
        self.touched: set[str] = set()
        self.restored: set[str] = set()
        self.aborted = False

    @initialize(spec=specs(), versions=st.lists(st.sampled_from(["", "1", "1.5"]), min_size=4, max_size=4))
    def start(self, spec: RolloutSpec, versions: list[str]) -> None:
        self.initial = new_rollout(rollout_id="r-1", spec=spec, now=0.0)
        self.plain = self.twin = self.initial
        self.versions = dict(zip(REGIONS, versions, strict=True))
        self.send(Started(previous_versions=self.versions))

    # --- the world -------------------------------------------------------------------------

    @rule(seconds=st.floats(0, 12))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.send(Tick())

    @rule(offset=st.sampled_from([0, 0, 0, -1, 1]), acked=st.integers(0, 2))
    def progress(self, offset: int, acked: int) -> None:
        wave = self.plain.current_wave + offset
        self.send(WaveProgress(wave=wave, expected=nodes(wave), acked=nodes(wave)[:acked]))

    @rule(offset=st.sampled_from([0, 0, 0, 1]))
    def acked(self, offset: int) -> None:
        wave = self.plain.current_wave + offset
        self.send(WaveAcked(wave=wave, node_ids=nodes(wave)))

    @rule(offset=st.sampled_from([0, -1, -1, -1]))
    def nacked(self, offset: int) -> None:
        self.send(Nacked(wave=self.plain.current_wave + offset, node_id="w-x", error="compile failed"))

    @rule(offset=st.sampled_from([0, 0, 0, -1]), wave_figures=figures(), baseline=st.none() | figures())
    def gate_figures(self, offset: int, wave_figures: Figures, baseline: Figures | None) -> None:
        self.send(GateFigures(wave=self.plain.current_wave + offset, figures=wave_figures, baseline=baseline))

    @rule(offset=st.sampled_from([0, 0, 0, 1]), requests=st.integers(0, 400), p99=st.floats(1, 200))
    def healthy_figures(self, offset: int, requests: int, p99: float) -> None:
        wave = self.plain.current_wave + offset
        self.send(
            GateFigures(
                wave=wave, figures=Figures(requests=requests, errors=0, p99_ms=p99 if requests else None)
            )
        )

    @rule()
    def a_wave_goes_well(self) -> None:
        """ACKs, healthy figures and a full bake, so that rollouts also reach their later waves."""
        wave = self.plain.current_wave
        self.send(WaveAcked(wave=wave, node_ids=nodes(wave)))
        self.send(GateFigures(wave=wave, figures=Figures(requests=500, errors=0, p99_ms=20)))
        self.now += self.plain.spec.waves[wave].bake_s
        self.send(Tick())

    # Abort is one action in nine, so that rollouts also get to their later waves.
    @rule(
        kind=st.sampled_from([*ActionKind, *(kind for kind in ActionKind if kind is not ActionKind.ABORT)]),
        actor=st.sampled_from(["alice", "bob"]),
    )
    def operator(self, kind: ActionKind, actor: str) -> None:
        self.send(OperatorAction(kind=kind, actor=actor, reason="test"))

    @rule(regions=st.sets(st.sampled_from(REGIONS), min_size=1))
    def restore_acked(self, regions: set[str]) -> None:
        self.send(RestoreAcked(regions=tuple(sorted(regions))))

    @rule(region=st.sampled_from(REGIONS))
    def restore_failed(self, region: str) -> None:
        self.send(RestoreFailed(region=region, error="unreachable"))

    @rule()
    def twin_restarts_at_once(self) -> None:
        """The twin is stored, reloaded and resumed with no downtime: it must not differ."""
        stored = json.loads(json.dumps(self.twin.to_dict()))
        self.twin, _ = step(Rollout.from_dict(stored), Resumed(), self.twin.clock_at)

    @rule(downtime=st.floats(1, 500))
    def control_plane_restarts(self, downtime: float) -> None:
        before = self.plain
        self.now = max(self.now, before.clock_at) + downtime
        commands = self.send(Resumed())
        after = self.plain
        if before.state.terminal or before.state is S.PENDING:
            return
        # The downtime counts neither towards the bake nor towards the deadline.
        assert after.wave.bake_elapsed_at(self.now) == before.wave.bake_elapsed_at(before.clock_at)
        if before.wave.deadline_at is not None:
            assert after.wave.deadline_at == before.wave.deadline_at + (self.now - before.clock_at)
        redeploys = [c for c in commands if isinstance(c, Deploy)]
        assert bool(redeploys) == (before.state is not S.ROLLING_BACK and before.wave.state is S.DEPLOYING)

    # --- sending, and what every step must respect ------------------------------------------

    def send(self, event: Event) -> list[Command]:
        before = self.plain
        try:
            after, commands = step(before, event, self.now)
        except RolloutError:
            assert isinstance(event, OperatorAction | Started)
            with pytest.raises(RolloutError):
                step(self.twin, event, self.now)
            return []
        self.twin, twin_commands = step(self.twin, event, self.now)
        self.plain = after
        self.log.append((event, self.now))
        if not isinstance(event, Resumed):
            assert twin_commands == commands
        self.check_step(before, after, event, commands)
        return commands

    def check_step(self, before: Rollout, after: Rollout, event: Event, commands: list[Command]) -> None:
        if before.state.terminal:
            assert (after, commands) == (before, [])
            return
        if before.state is S.PAUSED and after.state is S.PAUSED:
            assert after.wave.bake_elapsed_s == before.wave.bake_elapsed_s
        if before.state is S.PAUSED and after.state not in {S.PAUSED, S.ROLLING_BACK}:
            # Only an operator ends a pause (a failure still rolls back).
            assert isinstance(event, OperatorAction)
        wave = getattr(event, "wave", None)
        if wave is not None and wave != before.current_wave:
            assert commands == []
            assert after.state is before.state
            assert fold_insensitive(after) == fold_insensitive(before)
        if isinstance(event, OperatorAction) and event.kind is ActionKind.ABORT:
            self.aborted = True
        for command in commands:
            if isinstance(command, Deploy):
                self.check_deploy(before, after, command, event)
            if isinstance(command, Restore):
                first = before.state is not S.ROLLING_BACK
                assert (
                    set(command.versions) == self.touched if first else set(command.versions) <= self.touched
                )
                assert dict(command.versions) == {
                    region: self.versions[region] for region in command.versions
                }
        if isinstance(event, RestoreAcked) and after.state in {S.ROLLING_BACK, S.ROLLED_BACK, S.ABORTED}:
            self.restored |= set(event.regions)
        if after.state in {S.ROLLED_BACK, S.ABORTED}:
            # Every touched region, and only those, got its previous version back.
            assert self.touched <= self.restored
            assert set(after.previous_versions) == self.touched
            assert (after.state is S.ABORTED) == self.aborted

    def check_deploy(self, before: Rollout, after: Rollout, command: Deploy, event: Event) -> None:
        assert command.wave == after.current_wave
        assert command.regions == after.spec.waves[command.wave].regions
        count = self.deployed.get(command.wave, 0)
        # A wave is deployed once; a restart re-sends only a deploy that was never fully ACKed.
        assert count == 0 or (isinstance(event, Resumed) and before.wave.state is S.DEPLOYING)
        self.deployed[command.wave] = count + 1
        self.touched |= set(command.regions)

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def one_wave_at_a_time(self) -> None:
        if not hasattr(self, "plain"):
            return
        rollout = self.plain
        busy = [w.index for w in rollout.waves if w.state in IN_FLIGHT]
        assert len(busy) <= 1
        if busy:
            assert busy == [rollout.current_wave]
            assert rollout.state in {S.DEPLOYING, S.BAKING, S.PAUSED}
        assert all(w.state is S.PENDING for w in rollout.waves[rollout.current_wave + 1 :])
        if rollout.state is S.PAUSED:
            assert rollout.wave.bake_running_since is None
        if rollout.state is S.BAKING:
            assert rollout.wave.state is S.BAKING
            assert rollout.wave.bake_running_since is not None
        assert dict(rollout.previous_versions) == {region: self.versions[region] for region in self.touched}

    @invariant()
    def restart_equals_no_restart_and_json_round_trips(self) -> None:
        if not hasattr(self, "plain"):
            return
        assert self.twin == self.plain
        assert Rollout.from_dict(json.loads(json.dumps(self.plain.to_dict()))) == self.plain

    def teardown(self) -> None:
        if not hasattr(self, "plain"):
            return
        replayed = self.initial
        for event, now in self.log:
            replayed, _ = step(replayed, event, now)
        assert replayed == self.plain


RolloutMachine.TestCase.settings = settings(
    max_examples=80, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_rollout_machine = RolloutMachine.TestCase
