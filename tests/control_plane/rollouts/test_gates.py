"""The gate's verdicts and the sentences that explain them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.rollouts import Fail, Figures, GateLimits, InvalidValueError, Pass, Pending, judge
from control_plane.rollouts.gates import conclusive_errors, wilson_lower_bound

LIMITS = GateLimits(max_error_rate=0.01, max_p99_ms=250, min_requests=50)
W1 = "wave 1 (ap-northeast-2)"
W2 = "wave 2 (ap-northeast-1, ap-south-1)"


def test_error_rate_fails_during_the_bake_with_its_figures() -> None:
    figures = Figures(requests=1204, errors=496, p99_ms=40)
    verdict = judge(LIMITS, figures, None, bake_elapsed_s=3, bake_s=30, wave_label=W1)
    assert verdict == Fail(figures=figures, reason=f"{W1}: 5xx 41.2% of 1,204 requests > 1%: rolling back")


def test_p99_fails() -> None:
    figures = Figures(requests=800, errors=0, p99_ms=312.4)
    verdict = judge(LIMITS, figures, None, bake_elapsed_s=12, bake_s=30, wave_label=W2)
    assert isinstance(verdict, Fail)
    assert verdict.reason == f"{W2}: p99 312 ms > 250 ms: rolling back"


def test_every_broken_limit_is_named() -> None:
    verdict = judge(
        LIMITS, Figures(requests=100, errors=50, p99_ms=900), None, bake_elapsed_s=0, bake_s=30, wave_label=W1
    )
    assert isinstance(verdict, Fail)
    assert verdict.reason == f"{W1}: 5xx 50.0% of 100 requests > 1%, p99 900 ms > 250 ms: rolling back"


def test_passes_once_the_bake_is_complete() -> None:
    figures = Figures(requests=1532, errors=0, p99_ms=41)
    assert judge(LIMITS, figures, None, bake_elapsed_s=29.9, bake_s=30, wave_label=W1) == Pending(
        figures=figures
    )
    verdict = judge(LIMITS, figures, None, bake_elapsed_s=30, bake_s=30, wave_label=W1)
    assert verdict == Pass(
        figures=figures,
        reason=f"{W1}: 5xx 0.0% of 1,532 requests, p99 41 ms within limits after 30 s bake: passed",
    )


def test_too_little_traffic_is_not_judged_on_figures() -> None:
    # 1 error of 12 is 8%, but 12 requests do not settle it: no early failure.
    figures = Figures(requests=12, errors=1, p99_ms=900)
    assert judge(LIMITS, figures, None, bake_elapsed_s=10, bake_s=30, wave_label=W1) == Pending(
        figures=figures
    )
    verdict = judge(LIMITS, figures, None, bake_elapsed_s=30, bake_s=30, wave_label=W1)
    assert verdict == Pass(
        figures=figures, reason=f"{W1}: 12 requests < 50 needed: passed on bake time alone after 30 s bake"
    )


def test_conclusive_errors_fail_a_wave_with_little_traffic() -> None:
    # The router ejects a node that answers 500s, so a broken wave may see 25 requests in its
    # bake; 25 failures of 25 settle it without waiting for min_requests.
    figures = Figures(requests=25, errors=25, p99_ms=1)
    verdict = judge(LIMITS, figures, None, bake_elapsed_s=2, bake_s=30, wave_label=W1)
    assert isinstance(verdict, Fail)
    assert verdict.reason == (
        f"{W1}: 5xx 100.0% of 25 requests, p99 1 ms: fewer than 50, but 5xx is at least 69.8% "
        "(99.9% confidence) > 1%: rolling back"
    )
    assert conclusive_errors(LIMITS, Figures(requests=10, errors=10))
    assert not conclusive_errors(LIMITS, Figures(requests=9, errors=9))  # too few to say anything
    assert not conclusive_errors(LIMITS, Figures(requests=40, errors=1))


@given(st.integers(0, 1000), st.integers(1, 1000))
def test_the_lower_bound_is_a_share_below_the_observed_one(errors: int, requests: int) -> None:
    errors = min(errors, requests)
    lower = wilson_lower_bound(errors, requests)
    assert 0.0 <= lower <= errors / requests + 1e-12


def test_require_traffic_fails_a_quiet_wave() -> None:
    limits = GateLimits(max_error_rate=0.01, min_requests=50, require_traffic=True)
    verdict = judge(
        limits, Figures(requests=12, errors=0, p99_ms=3), None, bake_elapsed_s=30, bake_s=30, wave_label=W1
    )
    assert isinstance(verdict, Fail)
    assert (
        verdict.reason
        == f"{W1}: 12 requests < 50 needed after 30 s bake and traffic is required: rolling back"
    )


def test_relative_limit_compares_with_the_baseline() -> None:
    limits = GateLimits(max_error_rate=0.05, min_requests=50, max_error_increase=0.005)
    wave = Figures(requests=1000, errors=12, p99_ms=30)  # 1.2%
    baseline = Figures(requests=5000, errors=15, p99_ms=30)  # 0.3%
    verdict = judge(limits, wave, baseline, bake_elapsed_s=5, bake_s=30, wave_label=W1)
    assert isinstance(verdict, Fail)
    assert verdict.reason == (
        f"{W1}: 5xx 1.2% of 1,000 requests is 0.9 points above the previous version's 0.3% "
        "(limit +0.5): rolling back"
    )
    # Within +0.5 points of the baseline: fine.
    close = Figures(requests=1000, errors=7, p99_ms=30)
    assert isinstance(judge(limits, close, baseline, bake_elapsed_s=30, bake_s=30, wave_label=W1), Pass)


def test_relative_limit_needs_a_baseline_with_enough_traffic() -> None:
    limits = GateLimits(max_error_rate=0.05, min_requests=50, max_error_increase=0.005)
    wave = Figures(requests=1000, errors=12, p99_ms=30)
    for baseline in (None, Figures(requests=49, errors=0, p99_ms=3)):
        assert isinstance(judge(limits, wave, baseline, bake_elapsed_s=30, bake_s=30, wave_label=W1), Pass)


def test_a_limit_met_exactly_passes() -> None:
    limits = GateLimits(max_error_rate=0.01, max_p99_ms=250, min_requests=1, max_error_increase=0.005)
    wave = Figures(requests=1000, errors=10, p99_ms=250)
    baseline = Figures(requests=1000, errors=5, p99_ms=20)
    assert isinstance(judge(limits, wave, baseline, bake_elapsed_s=1, bake_s=1, wave_label=W1), Pass)


def test_p99_zero_is_not_gated() -> None:
    limits = GateLimits(max_error_rate=0.01, max_p99_ms=0, min_requests=1)
    verdict = judge(
        limits, Figures(requests=10, errors=0, p99_ms=9000), None, bake_elapsed_s=1, bake_s=1, wave_label=W1
    )
    assert isinstance(verdict, Pass)
    assert "p99 9,000 ms" in verdict.reason


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_error_rate": -0.1}, "max_error_rate"),
        ({"max_error_rate": 1.5}, "max_error_rate"),
        ({"max_error_rate": float("nan")}, "max_error_rate"),
        ({"max_p99_ms": -1.0}, "max_p99_ms"),
        ({"min_requests": -1}, "min_requests"),
        ({"max_error_increase": 2.0}, "max_error_increase"),
    ],
)
def test_bad_limits_are_refused(changes: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidValueError) as refused:
        GateLimits(**changes)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_bad_figures_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="errors <= requests"):
        Figures(requests=3, errors=4, p99_ms=1)
    with pytest.raises(InvalidValueError, match="p99"):
        Figures(requests=3, errors=0, p99_ms=-1)


figures = st.builds(
    Figures,
    requests=st.integers(0, 10_000),
    p99_ms=st.none() | st.floats(0, 5000),
).flatmap(
    lambda f: st.builds(
        Figures, requests=st.just(f.requests), errors=st.integers(0, f.requests), p99_ms=st.just(f.p99_ms)
    )
)
limits = st.builds(
    GateLimits,
    max_error_rate=st.floats(0, 1),
    max_p99_ms=st.floats(0, 5000),
    min_requests=st.integers(0, 200),
    require_traffic=st.booleans(),
    max_error_increase=st.none() | st.floats(0, 1),
)


@given(limits, figures, st.none() | figures, st.floats(0, 100), st.floats(0, 100))
def test_verdicts_are_consistent(
    limits: GateLimits, wave: Figures, baseline: Figures | None, elapsed: float, bake: float
) -> None:
    verdict = judge(limits, wave, baseline, bake_elapsed_s=elapsed, bake_s=bake, wave_label=W1)
    assert verdict.figures == wave
    if isinstance(verdict, Pending):
        assert elapsed < bake
    if isinstance(verdict, Pass):
        assert elapsed >= bake
        assert verdict.reason.startswith(f"{W1}: ")
        assert verdict.reason.endswith(("passed", "after " + verdict.reason.rsplit("after ", 1)[-1]))
    if isinstance(verdict, Fail):
        assert verdict.reason.endswith(": rolling back")
        # Early failures need enough traffic or conclusive errors; a quiet wave fails only at
        # the end, and only when required.
        assert (
            wave.requests >= limits.min_requests
            or conclusive_errors(limits, wave)
            or (limits.require_traffic and elapsed >= bake)
        )


@given(limits, figures)
def test_values_survive_to_dict(limits: GateLimits, wave: Figures) -> None:
    assert GateLimits.from_dict(limits.to_dict()) == limits
    assert Figures.from_dict(wave.to_dict()) == wave
