"""The restart policy: CrashLoopBackOff's shape, checked directly and with Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.restarts import RestartPolicy, describe_exit

POLICY = RestartPolicy()


def test_first_restart_waits_half_a_second_then_doubles_to_thirty() -> None:
    delays = [POLICY.delay(crashes) for crashes in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_minute_of_health_resets_the_count() -> None:
    assert POLICY.crashes_in_a_row(previous=7, ran_for_s=60.0) == 1
    assert POLICY.crashes_in_a_row(previous=7, ran_for_s=59.9) == 8


@given(crashes=st.integers(min_value=1, max_value=10_000))
def test_delay_is_bounded_and_never_shrinks_within_a_crash_loop(crashes: int) -> None:
    delay = POLICY.delay(crashes)
    assert POLICY.initial_s <= delay <= POLICY.maximum_s
    assert POLICY.delay(crashes + 1) >= delay


@given(
    previous=st.integers(min_value=0, max_value=1000),
    ran_for_s=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_crash_count_grows_by_one_or_starts_over(previous: int, ran_for_s: float) -> None:
    assert POLICY.crashes_in_a_row(previous, ran_for_s) in {1, previous + 1}


def test_refuses_a_policy_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        RestartPolicy(initial_s=0)
    with pytest.raises(ValueError, match="initial_s"):
        RestartPolicy(initial_s=5, maximum_s=1)


@pytest.mark.parametrize(
    ("returncode", "said"),
    [
        (-9, "killed by SIGKILL"),
        (-15, "killed by SIGTERM"),
        (3, "exited with status 3"),
        (0, "exited with status 0"),
    ],
)
def test_exits_are_described_as_people_say_them(returncode: int, said: str) -> None:
    assert describe_exit(returncode) == said
