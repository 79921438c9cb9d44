"""Gateway modules in rollouts: the spec, the deploy command, what a rollback puts back, and
the gate on the gateways' own health (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.rollouts import (
    Deploy,
    Fail,
    Figures,
    GateLimits,
    Pass,
    Pending,
    RolloutSpec,
    Started,
    WaveSpec,
    judge,
    new_rollout,
)
from control_plane.rollouts.errors import RolloutSpecError
from control_plane.rollouts.model import Rollout
from tests.control_plane.rollouts.support import BEFORE, Driver, make_spec

MODULE = "ab" * 32
LIMITS = GateLimits(max_error_rate=0.01, min_requests=50)


def judged(figures: Figures, *, elapsed: float = 10.0) -> Pass | Fail | Pending:
    return judge(
        LIMITS, figures, None, bake_elapsed_s=elapsed, bake_s=30.0, wave_label="wave 1 (ap-northeast-2)"
    )


def test_a_gateway_rollback_fails_the_wave_at_once_whatever_the_edge_saw() -> None:
    verdict = judged(Figures(requests=1000, errors=0, p99_ms=5.0, gateway_batches=40, gateway_rollbacks=1))
    assert isinstance(verdict, Fail)
    assert "1 gateway module rollbacks" in verdict.reason
    assert verdict.reason.endswith("rolling back")


def test_module_errors_fail_only_beyond_doubt() -> None:
    assert isinstance(judged(Figures(gateway_batches=2000, gateway_errors=1)), Pending)
    failing = judged(Figures(gateway_batches=10, gateway_errors=10))
    assert isinstance(failing, Fail)
    assert "gateway module errors in 50.0% of 20 batches" in failing.reason


def test_healthy_gateways_pass_with_the_bake_and_are_described() -> None:
    verdict = judged(Figures(gateway_batches=300), elapsed=30.0)
    assert isinstance(verdict, Pass)
    assert "gateways: 300 batches, 0 module errors, 0 rollbacks" in verdict.reason


@given(
    rollbacks=st.integers(min_value=1, max_value=10**6),
    requests=st.integers(min_value=0, max_value=10**6),
    batches=st.integers(min_value=0, max_value=10**6),
    elapsed=st.floats(min_value=0, max_value=1e6),
)
def test_any_self_rollback_fails(rollbacks: int, requests: int, batches: int, elapsed: float) -> None:
    figures = Figures(requests=requests, gateway_batches=batches, gateway_rollbacks=rollbacks)
    assert isinstance(judged(figures, elapsed=elapsed), Fail)


def test_figures_stored_before_gateways_took_part_still_read() -> None:
    assert Figures.from_dict({"requests": 3, "errors": 1, "p99_ms": None}) == Figures(requests=3, errors=1)
    full = Figures(requests=3, gateway_batches=4, gateway_errors=1, gateway_rollbacks=1)
    assert Figures.from_dict(full.to_dict()) == full


def test_spec_with_a_module_only_or_both() -> None:
    waves = (WaveSpec(regions=("ap-northeast-2",), bake_s=0),)
    only = RolloutSpec(app="", version="", waves=waves, gateway_module=MODULE)
    assert only.label == f"gateway module {MODULE[:8]}"
    both = replace(make_spec(), gateway_module=MODULE)
    assert both.label == f"geo-hello@1.1.0 + gateway module {MODULE[:8]}"
    assert RolloutSpec.from_dict(both.to_dict()) == both
    legacy = make_spec().to_dict()
    del legacy["gateway_module"]
    assert RolloutSpec.from_dict(legacy) == make_spec()


@pytest.mark.parametrize(
    ("app", "version", "module", "field"),
    [
        ("", "", "", "app"),
        ("geo-hello", "", MODULE, "app"),
        ("geo-hello", "1.0.0", "AB" * 32, "gateway_module"),
    ],
)
def test_bad_specs_are_refused(app: str, version: str, module: str, field: str) -> None:
    with pytest.raises(RolloutSpecError) as refused:
        RolloutSpec(
            app=app, version=version, waves=(WaveSpec(regions=("x",), bake_s=0),), gateway_module=module
        )
    assert refused.value.field == field


def test_each_wave_moves_its_gateways_and_the_modules_before_are_kept() -> None:
    spec = replace(make_spec(), gateway_module=MODULE)
    driver = Driver(new_rollout(rollout_id="r-9", spec=spec, now=0.0))
    before = {"ap-northeast-2/ap-northeast-2-gw-1": "cd" * 32}
    driver.send(Started(previous_versions=BEFORE, previous_gateway_modules=before))
    (deploy,) = driver.of(Deploy)
    assert deploy.gateway_module == MODULE
    assert deploy.regions == ("ap-northeast-2",)
    assert driver.rollout.gateway_modules_before == before
    assert Rollout.from_dict(driver.rollout.to_dict()) == driver.rollout
