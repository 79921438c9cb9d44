"""Operator actions: pause, resume, promote, promote --all, abort; each with who and why, or refused."""

from __future__ import annotations

import pytest

from control_plane.rollouts import (
    ActionKind,
    ActionRefusedError,
    Deploy,
    Figures,
    GateFigures,
    Nacked,
    Restore,
    RestoreAcked,
    RolloutState,
    Tick,
    WaveAcked,
    new_rollout,
    step,
)
from tests.control_plane.rollouts.support import Driver, action, make_spec, started

S = RolloutState
K = ActionKind


def baking_at(t: float) -> Driver:
    driver = started()
    driver.send(WaveAcked(wave=0, node_ids=("n1",)), at=t)
    return driver


def test_pause_stops_the_bake_clock_and_resume_restarts_it() -> None:
    driver = baking_at(0)
    driver.send(action(K.PAUSE, reason="checking dashboards"), at=10)
    assert driver.state() is S.PAUSED
    assert (
        driver.rollout.message
        == "paused by alice (checking dashboards): wave 1 (ap-northeast-2) bake held at 10 s of 30 s"
    )
    driver.send(Tick(), at=500)
    assert driver.state() is S.PAUSED
    assert driver.rollout.wave.bake_elapsed_at(500) == 10
    driver.send(action(K.RESUME, actor="bob"), at=600)
    assert driver.state() is S.BAKING
    assert driver.rollout.message == "resumed by bob: wave 1 (ap-northeast-2) baking, 10 s of 30 s done"
    driver.send(Tick(), at=619.9)
    assert driver.state() is S.BAKING
    driver.send(Tick(), at=620)
    assert driver.rollout.current_wave == 1
    history = driver.rollout.history
    assert [(t.to_state, t.actor) for t in history[-3:]] == [
        (S.PAUSED, "alice"),
        (S.BAKING, "bob"),
        (S.DEPLOYING, "system"),
    ]
    assert [(a.kind, a.actor, a.reason) for a in driver.rollout.actions] == [
        (K.PAUSE, "alice", "checking dashboards"),
        (K.RESUME, "bob", ""),
    ]


def test_a_failing_gate_rolls_back_even_while_paused() -> None:
    driver = baking_at(0)
    driver.send(action(K.PAUSE), at=5)
    driver.send(GateFigures(wave=0, figures=Figures(requests=100, errors=90, p99_ms=5)), at=6)
    assert driver.state() is S.ROLLING_BACK


def test_pause_while_deploying_holds_the_bake_until_resume() -> None:
    driver = started()
    driver.send(action(K.PAUSE), at=1)
    assert (
        driver.rollout.message
        == "paused by alice: wave 1 (ap-northeast-2) still deploying; its bake waits for resume"
    )
    driver.send(WaveAcked(wave=0, node_ids=("n1",)), at=2)
    assert driver.state() is S.PAUSED
    assert driver.rollout.wave.state is S.BAKING
    assert driver.rollout.message == "wave 1 (ap-northeast-2): 1 node ACKed; the 30 s bake starts on resume"
    driver.send(Tick(), at=100)
    assert driver.state() is S.PAUSED
    driver.send(action(K.RESUME), at=100)
    driver.send(Tick(), at=129)
    assert driver.state() is S.BAKING
    driver.send(Tick(), at=130)
    assert driver.rollout.current_wave == 1


def test_the_progress_deadline_holds_while_paused() -> None:
    driver = started()
    driver.send(action(K.PAUSE), at=1)
    driver.send(Tick(), at=60)
    assert driver.state() is S.ROLLING_BACK


def test_promote_skips_the_rest_of_the_bake() -> None:
    driver = baking_at(0)
    driver.send(GateFigures(wave=0, figures=Figures(requests=300, errors=0, p99_ms=41)), at=5)
    driver.send(action(K.PROMOTE, reason="looks good"), at=12)
    gate = driver.rollout.waves[0].gate
    assert gate is not None
    assert gate.passed
    assert gate.reason == (
        "promoted by alice (looks good): wave 1 (ap-northeast-2) passed after 12 s of 30 s bake "
        "(5xx 0.0% of 300 requests, p99 41 ms)"
    )
    assert driver.state() is S.DEPLOYING
    assert driver.of(Deploy)[0].wave == 1
    assert driver.rollout.history[-1].actor == "alice"


def test_promote_a_paused_wave_goes_on() -> None:
    driver = baking_at(0)
    driver.send(action(K.PAUSE), at=3)
    driver.send(action(K.PROMOTE), at=4)
    assert (driver.state(), driver.rollout.current_wave) == (S.DEPLOYING, 1)


def test_promote_all_skips_every_remaining_judgement_but_not_the_acks() -> None:
    driver = baking_at(0)
    driver.send(action(K.PROMOTE_ALL, actor="carol", reason="hotfix"), at=3)
    assert (driver.state(), driver.rollout.current_wave) == (S.DEPLOYING, 1)
    gate = driver.rollout.waves[0].gate
    assert gate is not None
    assert gate.reason.startswith(
        "promoted --all by carol (hotfix): wave 1 (ap-northeast-2) passed after 3 s of 30 s"
    )
    # Wave 2 waits for its ACKs, then wave 3 deploys at once, without a bake.
    driver.send(Tick(), at=50)
    assert driver.rollout.current_wave == 1
    driver.send(WaveAcked(wave=1, node_ids=("a", "b")), at=51)
    assert driver.rollout.current_wave == 2
    assert driver.of(Deploy)[0].wave == 2
    assert driver.rollout.waves[1].gate is not None
    assert "judgement skipped (promoted --all by carol)" in driver.rollout.waves[1].gate.reason
    driver.send(GateFigures(wave=2, figures=Figures(requests=100, errors=100, p99_ms=1)), at=52)  # not judged
    driver.send(WaveAcked(wave=2, node_ids=("c",)), at=53)
    assert driver.state() is S.SUCCEEDED
    with pytest.raises(ActionRefusedError):
        driver.send(action(K.PROMOTE_ALL), at=54)


def test_promote_all_while_deploying_and_a_nack_still_rolls_back() -> None:
    driver = started()
    driver.send(action(K.PROMOTE_ALL), at=1)
    assert driver.state() is S.DEPLOYING
    assert driver.rollout.history[-1].reason == (
        "promoted --all by alice: every remaining judgement skipped; wave 1 (ap-northeast-2) deploying"
    )
    with pytest.raises(ActionRefusedError, match="already promoted --all: no judgement left to skip"):
        driver.send(action(K.PROMOTE_ALL), at=2)
    driver.send(Nacked(wave=0, node_id="n1", error="compile failed"), at=3)
    assert driver.state() is S.ROLLING_BACK


def test_acks_during_a_pause_after_promote_all_wait_for_resume() -> None:
    driver = started()
    driver.send(action(K.PROMOTE_ALL), at=1)
    driver.send(action(K.PAUSE, actor="bob"), at=2)
    driver.send(WaveAcked(wave=0, node_ids=("n1",)), at=3)
    assert (driver.state(), driver.rollout.current_wave) == (S.PAUSED, 0)
    assert driver.rollout.message == "wave 1 (ap-northeast-2): 1 node ACKed; the next wave follows on resume"
    driver.send(action(K.RESUME, actor="bob"), at=4)
    assert (driver.state(), driver.rollout.current_wave) == (S.DEPLOYING, 1)
    gate = driver.rollout.waves[0].gate
    assert gate is not None
    assert gate.reason == (
        "resumed by bob: wave 1 (ap-northeast-2) ACKed; judgement skipped (promoted --all by alice)"
    )


def test_abort_rolls_back_and_ends_aborted() -> None:
    driver = baking_at(0)
    driver.send(action(K.ABORT, reason="wrong build"), at=4)
    assert driver.state() is S.ROLLING_BACK
    assert driver.rollout.message == "aborted by alice (wrong build): rolling back ap-northeast-2 to 1.0.0"
    assert driver.of(Restore) == [Restore(versions={"ap-northeast-2": "1.0.0"})]
    with pytest.raises(
        ActionRefusedError, match="rollout r-3 is rolling_back: nothing to abort: already rolling back"
    ):
        driver.send(action(K.ABORT), at=5)
    driver.send(RestoreAcked(regions=("ap-northeast-2",)), at=6)
    assert driver.state() is S.ABORTED
    assert (
        driver.rollout.message == "aborted by alice (wrong build): rolled back, ap-northeast-2 on 1.0.0 again"
    )


def test_abort_before_the_start_deploys_nothing() -> None:
    pending = new_rollout(rollout_id="r-3", spec=make_spec(), now=0)
    done, commands = step(pending, action(K.ABORT, reason="typo"), 1)
    assert done.state is S.ABORTED
    assert not [c for c in commands if isinstance(c, Deploy | Restore)]


@pytest.mark.parametrize(
    ("setup", "kind", "message"),
    [
        ("pending", K.PAUSE, "rollout r-3 is pending: not started yet: nothing to pause"),
        ("pending", K.PROMOTE, "rollout r-3 is pending: not started yet: nothing to promote"),
        ("deploying", K.RESUME, "rollout r-3 is deploying: not paused: nothing to resume"),
        (
            "deploying",
            K.PROMOTE,
            "rollout r-3 is deploying: wave 1 (ap-northeast-2) is still deploying: nothing to promote yet",
        ),
        ("baking", K.RESUME, "rollout r-3 is baking: not paused: nothing to resume"),
        ("paused", K.PAUSE, "rollout r-3 is paused: already paused"),
        (
            "rolling_back",
            K.PAUSE,
            "rollout r-3 is rolling_back: nothing to pause: a rollback always finishes",
        ),
        ("rolling_back", K.PROMOTE, "rollout r-3 is rolling_back: nothing to promote"),
    ],
)
def test_actions_that_mean_nothing_are_refused(setup: str, kind: ActionKind, message: str) -> None:
    if setup == "pending":
        rollout = new_rollout(rollout_id="r-3", spec=make_spec(), now=0)
    else:
        driver = started() if setup == "deploying" else baking_at(1)
        if setup == "paused":
            driver.send(action(K.PAUSE), at=2)
        if setup == "rolling_back":
            driver.send(action(K.ABORT), at=2)
        rollout = driver.rollout
    with pytest.raises(ActionRefusedError) as refused:
        step(rollout, action(kind), 3)
    assert str(refused.value).startswith(message)
    assert refused.value.action == kind.value
