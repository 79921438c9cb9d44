"""The OTA policy (iot_gateway.ota), driven directly: examples and Hypothesis invariants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from iot_gateway import ota

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_update_passes_probation_and_becomes_last_good() -> None:
    state = ota.initial(A)
    state, effects = ota.step(state, ota.Adopted(digest=B), probation=2)
    assert effects == (ota.Switch(digest=B, why="update"),)
    assert (state.current, state.last_good, state.probation_left) == (B, A, 2)
    state, effects = ota.step(state, ota.BatchRan(), probation=2)
    assert effects == ()
    state, effects = ota.step(state, ota.BatchRan(), probation=2)
    assert effects == (ota.Persist(digest=B),)
    assert (state.current, state.last_good, state.on_probation) == (B, B, False)


def test_failure_on_probation_rolls_back_and_says_why() -> None:
    state, _ = ota.step(ota.initial(A), ota.Adopted(digest=B), probation=3)
    state, effects = ota.step(state, ota.BatchRan(error="trap: unreachable"), probation=3)
    assert effects == (ota.Switch(digest=A, why="rollback"),)
    assert (state.current, state.rollbacks_total) == (A, 1)
    assert state.last_error is not None
    assert "trap: unreachable" in state.last_error


def test_failure_of_a_proven_module_is_reported_not_rolled_back() -> None:
    state, effects = ota.step(ota.initial(A), ota.BatchRan(error="deadline"), probation=3)
    assert effects == ()
    assert (state.current, state.last_error) == (A, "deadline")


def test_refused_update_keeps_the_module() -> None:
    state, effects = ota.step(ota.initial(A), ota.Refused(digest=B, reason="not_wasm"), probation=3)
    assert effects == ()
    assert state.current == A
    assert "not_wasm" in (state.last_error or "")


def test_no_probation_persists_at_once() -> None:
    _, effects = ota.step(ota.initial(A), ota.Adopted(digest=B), probation=0)
    assert effects == (ota.Switch(digest=B, why="update"), ota.Persist(digest=B))


def test_startup_prefers_the_last_good_module_that_loads() -> None:
    assert ota.startup_module(configured=A, on_disk=B, on_disk_loads=True) == B
    assert ota.startup_module(configured=A, on_disk=B, on_disk_loads=False) == A
    assert ota.startup_module(configured=A, on_disk=None, on_disk_loads=False) == A


events = st.one_of(
    st.builds(ota.Adopted, digest=st.sampled_from([A, B, C])),
    st.builds(ota.Refused, digest=st.sampled_from([A, B, C]), reason=st.just("bad")),
    st.builds(ota.BatchRan, error=st.sampled_from(["", "", "trap"])),
)


@given(st.lists(events, max_size=40), st.integers(min_value=0, max_value=4))
def test_invariants(sequence: list[ota.Event], probation: int) -> None:
    state = ota.initial(A)
    proven = {A}  # modules that were initial or passed probation
    persisted = A
    running = A
    for event in sequence:
        before = state
        state, effects = ota.step(state, event, probation=probation)
        for effect in effects:
            if isinstance(effect, ota.Switch):
                running = effect.digest
            else:
                persisted = effect.digest
                proven.add(effect.digest)
        # The adapter runs exactly what the policy says is current.
        assert running == state.current
        # What is on disk is always the last good module, and it proved itself.
        assert persisted == state.last_good
        assert state.last_good in proven
        assert 0 <= state.probation_left <= probation
        # Off probation, the current module is the proven one.
        if not state.on_probation:
            assert state.current == state.last_good
        # A failure during probation always ends on the last good module.
        if isinstance(event, ota.BatchRan) and event.error and before.on_probation:
            assert state.current == before.last_good
            assert state.rollbacks_total == before.rollbacks_total + 1
        else:
            assert state.rollbacks_total == before.rollbacks_total
