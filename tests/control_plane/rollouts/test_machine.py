"""The machine's rules, one by one: waves in order, ACKs, bakes, deadlines, rollbacks, stale events."""

from __future__ import annotations

import pytest

from control_plane.rollouts import (
    ActionKind,
    ActionRefusedError,
    Deploy,
    EventRefusedError,
    Figures,
    GateFigures,
    GateLimits,
    Nacked,
    Notify,
    Record,
    Restore,
    RestoreAcked,
    RestoreFailed,
    Resumed,
    RolloutState,
    Started,
    Tick,
    WaveAcked,
    WaveProgress,
    new_rollout,
    step,
)
from tests.control_plane.rollouts.support import BEFORE, Driver, action, make_spec, started

S = RolloutState
GOOD = Figures(requests=1532, errors=0, p99_ms=41)
BROKEN = Figures(requests=1204, errors=496, p99_ms=40)


def baking(driver: Driver, wave: int, *, at: float) -> None:
    driver.send(WaveAcked(wave=wave, node_ids=(f"n{wave}a", f"n{wave}b")), at=at)
    assert driver.state() is S.BAKING


def test_start_deploys_the_first_wave_only() -> None:
    driver = started(now=5)
    rollout = driver.rollout
    assert rollout.state is S.DEPLOYING
    assert driver.of(Deploy) == [
        Deploy(wave=0, regions=("ap-northeast-2",), app="geo-hello", version="1.1.0")
    ]
    assert [type(c) for c in driver.last] == [Record, Notify, Deploy]
    assert dict(rollout.previous_versions) == {"ap-northeast-2": "1.0.0"}
    assert rollout.wave.started_at == 5
    assert rollout.wave.deadline_at == 65
    assert rollout.history[-1].to_state is S.DEPLOYING
    assert rollout.message == "geo-hello@1.1.0: 3 waves; deploying wave 1 (ap-northeast-2)"


def test_start_needs_every_regions_version_and_happens_once() -> None:
    pending = new_rollout(rollout_id="r-3", spec=make_spec(), now=0)
    with pytest.raises(EventRefusedError, match="no previous version given for eu-west-1"):
        step(pending, Started(previous_versions={k: v for k, v in BEFORE.items() if k != "eu-west-1"}), 1)
    driver = started()
    with pytest.raises(EventRefusedError, match="rollout r-3: start refused: it is already deploying"):
        driver.send(Started(previous_versions=BEFORE))


def test_bake_starts_when_every_node_has_acked() -> None:
    driver = started()
    assert driver.send(WaveProgress(wave=0, expected=("n1", "n2", "n3"), acked=("n1",)), at=4) == []
    assert driver.state() is S.DEPLOYING
    assert driver.rollout.wave.acked_nodes == ("n1",)
    driver.send(WaveProgress(wave=0, expected=("n1", "n2", "n3"), acked=("n3", "n1", "n2")), at=7)
    wave = driver.rollout.wave
    assert driver.state() is S.BAKING
    assert (wave.deployed_at, wave.bake_running_since, wave.deadline_at) == (7, 7, None)
    assert driver.rollout.message == "wave 1 (ap-northeast-2): all 3 nodes ACKed; baking for 30 s"
    driver.send(Tick(), at=36.9)
    assert driver.state() is S.BAKING  # the bake counts from the last ACK, not from the deploy
    assert driver.rollout.wave.bake_elapsed_s == pytest.approx(29.9)


def test_waves_go_one_after_another_to_success() -> None:
    driver = started()
    deployed: list[tuple[str, ...]] = []
    t = 0.0
    for wave in range(3):
        deployed += [c.regions for c in driver.commands if isinstance(c, Deploy) and c.wave == wave]
        baking(driver, wave, at=t + 2)
        driver.send(GateFigures(wave=wave, figures=GOOD, baseline=None), at=t + 20)
        driver.send(Tick(), at=t + 32)
        assert driver.rollout.waves[wave].state is S.SUCCEEDED
        gate = driver.rollout.waves[wave].gate
        assert gate is not None
        assert gate.passed
        t += 32
    assert deployed == [("ap-northeast-2",), ("ap-northeast-1", "ap-south-1"), ("eu-west-1",)]
    assert driver.state() is S.SUCCEEDED
    assert driver.rollout.message == (
        "wave 3 (eu-west-1): 5xx 0.0% of 1,532 requests, p99 41 ms within limits after 30 s bake: passed; "
        "geo-hello@1.1.0 runs in every wave's regions"
    )
    assert not driver.of(Restore)
    assert dict(driver.rollout.previous_versions) == BEFORE


def test_a_broken_wave_fails_during_the_bake_and_is_rolled_back() -> None:
    driver = started()
    baking(driver, 0, at=1)
    driver.send(GateFigures(wave=0, figures=BROKEN, baseline=None), at=4)  # 3 s into a 30 s bake
    rollout = driver.rollout
    reason = "wave 1 (ap-northeast-2): 5xx 41.2% of 1,204 requests > 1%: rolling back"
    assert rollout.state is S.ROLLING_BACK
    assert rollout.wave.gate is not None
    assert rollout.wave.gate.reason == reason
    assert not rollout.wave.gate.passed
    assert rollout.message == f"{reason} ap-northeast-2 to 1.0.0"
    assert driver.of(Restore) == [Restore(versions={"ap-northeast-2": "1.0.0"})]
    assert rollout.waves[0].state is S.ROLLING_BACK
    assert [w.state for w in rollout.waves[1:]] == [S.PENDING, S.PENDING]
    driver.send(RestoreAcked(regions=("ap-northeast-2",)), at=5)
    assert driver.state() is S.ROLLED_BACK
    assert driver.rollout.waves[0].state is S.ROLLED_BACK
    assert driver.rollout.message == (
        "wave 1 (ap-northeast-2): 5xx 41.2% of 1,204 requests > 1%: rolled back, "
        "ap-northeast-2 on 1.0.0 again"
    )


def test_rollback_restores_every_touched_region_and_nothing_else() -> None:
    driver = started()
    baking(driver, 0, at=1)
    driver.send(Tick(), at=31)
    driver.send(WaveProgress(wave=1, expected=("a", "b"), acked=("a",)), at=32)
    driver.send(Nacked(wave=1, node_id="b", error="module sha256 mismatch"), at=33)
    assert driver.state() is S.ROLLING_BACK
    assert driver.rollout.message.startswith(
        "wave 2 (ap-northeast-1, ap-south-1): node b NACKed: module sha256 mismatch"
    )
    # ap-south-1 ran no version: it is listed with "" so the adapter clears it; eu-west-1 was never touched.
    assert driver.of(Restore) == [
        Restore(versions={"ap-northeast-2": "1.0.0", "ap-northeast-1": "1.0.0", "ap-south-1": ""})
    ]
    driver.send(RestoreAcked(regions=("ap-south-1",)), at=34)
    assert driver.state() is S.ROLLING_BACK
    assert driver.rollout.message == "restored ap-south-1; waiting for ap-northeast-1, ap-northeast-2"
    driver.send(RestoreAcked(regions=("ap-northeast-1", "ap-northeast-2")), at=35)
    assert driver.state() is S.ROLLED_BACK
    assert [w.state for w in driver.rollout.waves] == [S.ROLLED_BACK, S.ROLLED_BACK, S.PENDING]


def test_progress_deadline_names_the_silent_nodes() -> None:
    driver = started()
    driver.send(WaveProgress(wave=0, expected=("n1", "n2", "n3"), acked=("n2",)), at=10)
    driver.send(Tick(), at=59.9)
    assert driver.state() is S.DEPLOYING
    driver.send(Tick(), at=60)
    assert driver.state() is S.ROLLING_BACK
    assert driver.rollout.message.startswith(
        "wave 1 (ap-northeast-2): nodes n1, n3 did not ACK within the 60 s progress deadline (1 of 3 ACKed): "
        "rolling back"
    )


def test_progress_deadline_without_any_progress_and_with_many_nodes() -> None:
    driver = started(make_spec(progress_deadline_s=20))
    driver.send(Tick(), at=20)
    assert driver.rollout.message.startswith(
        "wave 1 (ap-northeast-2): no deploy progress reported within the 20 s progress deadline: rolling back"
    )
    crowd = started()
    nodes = tuple(f"n{i:03}" for i in range(30))
    crowd.send(WaveProgress(wave=0, expected=nodes, acked=nodes[:5]), at=1)
    crowd.send(Tick(), at=61)
    assert "nodes n005, n006, n007, n008, n009, n010, n011, n012, n013, n014 and 15 more did not ACK" in (
        crowd.rollout.message
    )


def test_stale_events_are_ignored() -> None:
    driver = started()
    baking(driver, 0, at=1)
    driver.send(Tick(), at=31)  # wave 1 passed, wave 2 deploying
    before = driver.rollout
    for event in (
        WaveAcked(wave=0, node_ids=("x",)),
        WaveAcked(wave=2, node_ids=("x",)),
        Nacked(wave=0, node_id="n0a", error="late"),
        GateFigures(wave=0, figures=BROKEN),
        GateFigures(wave=1, figures=BROKEN),  # wave 2 is not baking yet: not judged
        RestoreAcked(regions=("ap-northeast-2",)),
        RestoreFailed(region="ap-northeast-2", error="late"),
    ):
        assert driver.send(event, at=32) == []
        assert driver.state() is S.DEPLOYING
    assert driver.rollout.waves == before.waves


def test_events_while_rolling_back_change_nothing_but_the_rollback() -> None:
    driver = started()
    baking(driver, 0, at=1)
    driver.send(GateFigures(wave=0, figures=BROKEN), at=2)
    before = driver.rollout
    for event in (
        WaveAcked(wave=0, node_ids=("x",)),
        GateFigures(wave=0, figures=GOOD),
        Nacked(wave=0, node_id="x", error="e"),
    ):
        assert driver.send(event, at=3) == []
    assert driver.rollout.waves == before.waves
    assert driver.state() is S.ROLLING_BACK


def test_terminal_states_stay_terminal() -> None:
    driver = started()
    baking(driver, 0, at=1)
    driver.send(GateFigures(wave=0, figures=BROKEN), at=2)
    driver.send(RestoreAcked(regions=("ap-northeast-2",)), at=3)
    done = driver.rollout
    assert done.state is S.ROLLED_BACK
    for event in (
        Tick(),
        Resumed(),
        WaveAcked(wave=0, node_ids=("n",)),
        RestoreAcked(regions=("ap-northeast-2",)),
    ):
        assert step(done, event, 100) == (done, [])
    with pytest.raises(ActionRefusedError) as refused:
        step(done, action(ActionKind.PAUSE), 100)
    assert str(refused.value) == "rollout r-3 is rolled_back: nothing to pause"
    for kind in ActionKind:
        with pytest.raises(ActionRefusedError):
            step(done, action(kind), 100)
    with pytest.raises(EventRefusedError):
        step(done, Started(previous_versions=BEFORE), 100)


def test_a_failed_restore_is_sent_again_until_acked() -> None:
    driver = started()
    baking(driver, 0, at=1)
    driver.send(Nacked(wave=0, node_id="n0a", error="boom"), at=2)
    driver.send(RestoreFailed(region="ap-northeast-2", error="node unreachable"), at=3)
    assert (
        driver.rollout.message
        == "restoring ap-northeast-2 to 1.0.0 failed: node unreachable; trying again in 5 s"
    )
    assert driver.send(Tick(), at=7) == []
    driver.send(Tick(), at=8)
    assert driver.of(Restore) == [Restore(versions={"ap-northeast-2": "1.0.0"})]
    # Not answered within the progress deadline either: sent once more.
    assert not driver.send(Tick(), at=67.9)
    driver.send(Tick(), at=68)
    assert driver.of(Restore) == [Restore(versions={"ap-northeast-2": "1.0.0"})]
    driver.send(RestoreAcked(regions=("ap-northeast-2",)), at=69)
    assert driver.state() is S.ROLLED_BACK


def test_zero_bake_passes_at_the_ack() -> None:
    driver = started(make_spec(bake_s=0))
    driver.send(WaveAcked(wave=0, node_ids=("n",)), at=1)
    assert driver.state() is S.DEPLOYING
    assert driver.rollout.current_wave == 1
    assert [t.to_state for t in driver.rollout.history] == [S.DEPLOYING, S.BAKING, S.DEPLOYING]
    assert driver.rollout.waves[0].gate is not None
    assert driver.rollout.waves[0].gate.reason.endswith("passed on bake time alone after 0 s bake")


def test_a_region_without_nodes_has_nothing_to_wait_for() -> None:
    driver = started()
    driver.send(WaveProgress(wave=0, expected=(), acked=()), at=1)
    assert driver.state() is S.BAKING
    assert (
        driver.rollout.message
        == "wave 1 (ap-northeast-2): no node in its regions yet, none to wait for; baking for 30 s"
    )


def test_a_quiet_wave_with_require_traffic_is_rolled_back_at_the_end_of_the_bake() -> None:
    driver = started(make_spec(limits=GateLimits(min_requests=50, require_traffic=True)))
    baking(driver, 0, at=0)
    driver.send(GateFigures(wave=0, figures=Figures(requests=12, errors=0, p99_ms=3)), at=10)
    assert driver.state() is S.BAKING
    driver.send(Tick(), at=30)
    assert driver.state() is S.ROLLING_BACK
    assert "12 requests < 50 needed after 30 s bake and traffic is required" in driver.rollout.message


def test_a_clock_stepping_back_never_shrinks_the_bake() -> None:
    driver = started()
    baking(driver, 0, at=10)
    driver.send(Tick(), at=20)
    driver.send(Tick(), at=15)
    assert driver.rollout.wave.bake_elapsed_s == 10
    assert driver.rollout.clock_at == 20
