"""A control plane killed mid-rollout resumes where it was: no second deploy, the bake clock keeps
what had elapsed, a rollback in progress finishes."""

from __future__ import annotations

import json

from control_plane.rollouts import (
    ActionKind,
    Deploy,
    Restore,
    RestoreAcked,
    Resumed,
    Rollout,
    RolloutState,
    Tick,
    WaveAcked,
    WaveProgress,
    new_rollout,
    step,
)
from tests.control_plane.rollouts.support import Driver, action, make_spec, started

S = RolloutState


def restarted(driver: Driver, at: float) -> Driver:
    """What the store gives back after a restart, then ``Resumed``."""
    stored = json.loads(json.dumps(driver.rollout.to_dict()))
    again = Driver(Rollout.from_dict(stored), now=at)
    assert again.rollout == driver.rollout
    again.send(Resumed(), at=at)
    return again


def test_restart_while_deploying_sends_the_deploy_again_and_shifts_the_deadline() -> None:
    driver = started()
    driver.send(WaveProgress(wave=0, expected=("n1", "n2"), acked=("n1",)), at=50)
    again = restarted(driver, at=350)
    assert again.of(Deploy) == [Deploy(wave=0, regions=("ap-northeast-2",), app="geo-hello", version="1.1.0")]
    assert again.rollout.wave.deadline_at == 360  # 10 s were left at the crash; the downtime does not count
    again.send(WaveAcked(wave=0, node_ids=("n1", "n2")), at=355)
    assert again.state() is S.BAKING


def test_restart_mid_bake_keeps_the_elapsed_bake_and_deploys_nothing() -> None:
    driver = started()
    driver.send(WaveAcked(wave=0, node_ids=("n1",)), at=0)
    driver.send(Tick(), at=10)
    again = restarted(driver, at=1000)
    assert not again.of(Deploy)
    assert again.rollout.wave.bake_elapsed_at(1000) == 10
    again.send(Tick(), at=1019)
    assert again.state() is S.BAKING
    again.send(Tick(), at=1020)
    assert again.rollout.current_wave == 1


def test_restart_while_paused_keeps_it_paused() -> None:
    driver = started()
    driver.send(WaveAcked(wave=0, node_ids=("n1",)), at=0)
    driver.send(action(ActionKind.PAUSE), at=5)
    again = restarted(driver, at=900)
    assert again.state() is S.PAUSED
    assert again.rollout.wave.bake_elapsed_at(900) == 5
    assert not again.of(Deploy)


def test_a_rollback_in_progress_finishes_after_a_restart() -> None:
    driver = started()
    driver.send(WaveAcked(wave=0, node_ids=("n1",)), at=0)
    driver.send(Tick(), at=30)
    driver.send(action(ActionKind.ABORT), at=31)
    driver.send(RestoreAcked(regions=("ap-northeast-2",)), at=32)
    again = restarted(driver, at=400)
    # Only what is still pending is sent again.
    assert again.of(Restore) == [Restore(versions={"ap-northeast-1": "1.0.0", "ap-south-1": ""})]
    again.send(RestoreAcked(regions=("ap-northeast-1", "ap-south-1")), at=401)
    assert again.state() is S.ABORTED


def test_restart_of_a_pending_or_finished_rollout_does_nothing() -> None:
    pending = new_rollout(rollout_id="r-3", spec=make_spec(), now=0)
    rollout, commands = step(pending, Resumed(), 10)
    assert commands == []
    assert rollout.state is S.PENDING
    driver = started(make_spec(waves=[("eu-west-1",)], bake_s=0))
    driver.send(WaveAcked(wave=0, node_ids=("n",)), at=1)
    assert driver.state() is S.SUCCEEDED
    assert step(driver.rollout, Resumed(), 100) == (driver.rollout, [])
