"""Parsing the wave spec, and refusing specs the machine could not run."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.rollouts import GateLimits, RolloutSpec, RolloutSpecError, WaveSpec, parse_waves

KNOWN = ["ap-northeast-1", "ap-northeast-2", "ap-south-1", "eu-west-1", "us-east-1"]


def test_waves_and_star() -> None:
    assert parse_waves("ap-northeast-2;ap-northeast-1,ap-south-1;*", KNOWN) == [
        ["ap-northeast-2"],
        ["ap-northeast-1", "ap-south-1"],
        ["eu-west-1", "us-east-1"],
    ]


def test_star_leaves_out_regions_named_in_later_waves_too() -> None:
    assert parse_waves(" ap-south-1 ; * ; us-east-1 ", KNOWN) == [
        ["ap-south-1"],
        ["ap-northeast-1", "ap-northeast-2", "eu-west-1"],
        ["us-east-1"],
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no waves given"),
        ("ap-south-1;;us-east-1", "wave 2 is empty"),
        ("ap-south-1;", "wave 2 is empty"),
        ("ap-south-1,,us-east-1", "wave 1 has an empty region name"),
        ("ap-south-1;xx-nowhere-1", "unknown region xx-nowhere-1 (wave 2); known: ap-northeast-1, "),
        ("xx-a;xx-b", "unknown regions xx-a (wave 1), xx-b (wave 2)"),
        ("ap-south-1;us-east-1,ap-south-1", "a region may be in one wave only: ap-south-1 (waves 1, 2)"),
        ("ap-south-1,ap-south-1", "ap-south-1 (twice in wave 1)"),
        ("*;*", "'*' (every remaining region) may appear only once"),
        ("ap-northeast-1,ap-northeast-2,ap-south-1;eu-west-1,us-east-1;*", "wave 3 ('*') is empty"),
    ],
)
def test_bad_wave_specs_are_refused_with_the_problem_named(spec: str, message: str) -> None:
    with pytest.raises(RolloutSpecError) as refused:
        parse_waves(spec, KNOWN)
    assert refused.value.field == "waves"
    assert message in str(refused.value)


@given(st.permutations(KNOWN), st.integers(1, 5), st.booleans())
def test_every_region_in_exactly_one_wave(order: list[str], cut: int, star: bool) -> None:
    named = order[:cut]
    spec = ";".join(named) + (";*" if star and cut < len(KNOWN) else "")
    waves = parse_waves(spec, KNOWN)
    flat = [region for wave in waves for region in wave]
    assert len(flat) == len(set(flat))
    assert set(flat) == (set(KNOWN) if star and cut < len(KNOWN) else set(named))


def _spec(**changes: object) -> RolloutSpec:
    fields: dict[str, object] = {
        "app": "geo-hello",
        "version": "1.1.0",
        "waves": (WaveSpec(regions=("ap-south-1",), bake_s=30),),
        "limits": GateLimits(),
        "progress_deadline_s": 60.0,
    } | changes
    return RolloutSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"app": ""}, "app", "an app name and a version are needed"),
        ({"version": " "}, "app", "an app name and a version are needed"),
        ({"waves": ()}, "waves", "at least one wave"),
        ({"waves": (WaveSpec(regions=(), bake_s=1),)}, "waves", "wave 1 has no region"),
        (
            {"waves": (WaveSpec(regions=("a",), bake_s=1), WaveSpec(regions=("b", "a"), bake_s=1))},
            "waves",
            "region a is in wave 1 and wave 2",
        ),
        ({"waves": (WaveSpec(regions=("a",), bake_s=-1),)}, "bake", "bake must be >= 0 s"),
        ({"progress_deadline_s": 0.0}, "progress_deadline", "must be > 0 s"),
        ({"progress_deadline_s": float("inf")}, "progress_deadline", "must be > 0 s"),
    ],
)
def test_validate_spec_refuses_bad_specs(changes: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(RolloutSpecError) as refused:
        _spec(**changes)
    assert refused.value.field == field
    assert message in str(refused.value)


def test_a_good_spec_survives_to_dict() -> None:
    spec = _spec(limits=GateLimits(max_error_increase=0.005, require_traffic=True))
    assert RolloutSpec.from_dict(spec.to_dict()) == spec
