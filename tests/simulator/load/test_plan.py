"""The pure decisions of a load run: mixes, scenario files, arrival times, worker splits."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from simulator.load.errors import BadInputError, ScenarioError
from simulator.load.plan import (
    CountryPicker,
    Mix,
    Phase,
    Plan,
    arrivals,
    load_scenario,
    parse_duration,
    parse_mix,
)

MIX = parse_mix("KR=10,US=40,DE=50")


def steady(rate: float, seconds: float = 10.0, mix: Mix = MIX) -> Phase:
    return Phase(name="s", kind="steady", duration_s=seconds, mix=mix, rate_start=rate)


def test_parse_mix_reads_shares() -> None:
    assert MIX.shares() == {"KR": 0.1, "US": 0.4, "DE": 0.5}
    assert parse_mix("kr=1, jp=1").countries == ("KR", "JP")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("KR", "not CC=SHARE"),
        ("KR=x", "not a number"),
        ("KR=0", "positive"),
        ("KR=1,KR=2", "twice"),
        ("", "no country"),
    ],
)
def test_bad_mixes_are_named(text: str, needle: str) -> None:
    with pytest.raises(BadInputError, match=needle):
        parse_mix(text)


def test_split_gives_every_country_its_part_and_at_least_one() -> None:
    assert MIX.split(10) == {"KR": 1, "US": 4, "DE": 5}
    assert sum(MIX.split(7).values()) == 7
    assert MIX.split(1) == {"KR": 1, "US": 1, "DE": 1}


def test_smooth_round_robin_is_exact_over_every_window() -> None:
    picker = CountryPicker(MIX)
    picks = [picker.next() for _ in range(100)]
    for start in range(0, 100, 10):
        window = picks[start : start + 10]
        assert (window.count("KR"), window.count("US"), window.count("DE")) == (1, 4, 5)


def test_constant_arrivals_are_evenly_spaced() -> None:
    times = [t for t, _ in arrivals(Plan(phases=(steady(100.0, 2.0),)), seed=1)]
    assert len(times) == 200
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.01}


def test_poisson_arrivals_have_the_rate_on_average_and_vary() -> None:
    plan = Plan(phases=(steady(1000.0, 20.0),), arrival="poisson")
    times = [t for t, _ in arrivals(plan, seed=7)]
    assert 19_000 < len(times) < 21_000
    gaps = [b - a for a, b in itertools.pairwise(times)]
    mean = sum(gaps) / len(gaps)
    variance = sum((g - mean) ** 2 for g in gaps) / len(gaps)
    assert variance**0.5 == pytest.approx(mean, rel=0.05)  # exponential: sd == mean
    assert times == [t for t, _ in arrivals(plan, seed=7)]  # a seed repeats a run


def test_ramp_sends_the_integral_of_its_rate_and_speeds_up() -> None:
    ramp = Phase(name="r", kind="ramp", duration_s=10.0, mix=MIX, rate_start=0.0, rate_end=200.0)
    times = [t for t, _ in arrivals(Plan(phases=(ramp,)), seed=1)]
    assert len(times) == 1000  # (0 + 200) / 2 * 10
    first_half = sum(1 for t in times if t < 5.0)
    assert first_half == pytest.approx(250, abs=1)  # a quarter of the area lies before the middle


def test_phases_follow_each_other_with_their_own_mix() -> None:
    spike = Phase(name="spike", kind="spike", duration_s=1.0, mix=parse_mix("JP=1"), rate_start=500.0)
    plan = Plan(phases=(steady(100.0, 2.0), spike))
    got = list(arrivals(plan, seed=1))
    assert len(got) == 700
    assert {cc for t, cc in got if t >= 2.0} == {"JP"}
    assert {cc for t, cc in got if t < 2.0} == {"KR", "US", "DE"}
    assert max(t for t, _ in got) < 3.0


def test_workers_interleave_into_one_even_stream() -> None:
    plan = Plan(phases=(steady(100.0, 1.0),))
    workers = 4
    merged = sorted(
        t
        for i in range(workers)
        for t, _ in arrivals(Plan(phases=(plan.phases[0].scaled(1 / workers),)), seed=1, offset=i / workers)
    )
    assert len(merged) == 100
    assert {round(b - a, 9) for a, b in itertools.pairwise(merged)} == {0.01}


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("2m", 120.0), ("500ms", 0.5), ("1.5", 1.5), (3, 3.0)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text, field_name="d") == seconds


@pytest.mark.parametrize("text", ["soon", "-1s", "0s", "5 parsecs"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(BadInputError, match="--duration"):
        parse_duration(text, field_name="--duration")


def test_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "peak.toml"
    path.write_text(
        """
[scenario]
name = "evening peak"
arrival = "poisson"
mix = { KR = 10, US = 40, DE = 50 }

[[phase]]
name = "warm-up"
kind = "ramp"
duration = "30s"
from_rate = 100
to_rate = 1000

[[phase]]
kind = "steady"
duration = "1m"
rate = 1000

[[phase]]
kind = "spike"
duration = "10s"
rate = 5000
mix = "KR=100"
""",
        encoding="utf-8",
    )
    plan = load_scenario(path)
    assert plan.arrival == "poisson"
    assert plan.meta == {"name": "evening peak"}
    assert [p.kind for p in plan.phases] == ["ramp", "steady", "spike"]
    assert plan.duration_s == 100.0
    assert plan.phases[0].rate_start == 100.0
    assert plan.phases[0].end_rate == 1000.0
    assert plan.phases[2].mix.countries == ("KR",)
    assert plan.countries() == ("KR", "US", "DE")


HEAD = "[scenario]\nmix = 'KR=1'\n[[phase]]\nduration = '1s'\n"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[[phase]]\nduration = '1s'\nrate = 5\n", "needs a mix"),
        ("[scenario]\nmix = 'KR=1'\n[[phase]]\nrate = 5\n", "needs a duration"),
        (HEAD + "kind = 'ramp'\nrate = 5\n", "from_rate and to_rate"),
        (HEAD + "kind = 'burst'\nrate = 5\n", "kind must be one of"),
        ("[scenario]\nmix = 'KR=1'\n[[phase]]\nduration = '1s'\nrate = 5\nconcurrency = 2\n", "exactly one"),
        (("[scenario]\nmix = 'KR=1'\n[[phase]]\nduration = '1s'\nrate = 5\n[[phase]]\nduration = '1s'\n"
         "concurrency = 2\n"), "all phases use a rate"),
        ("[scenario]\nmix = 'KR=1'\n[[phase]]\nduration = '1s'\nrate = 5\nrps = 3\n", "unknown keys"),
        ("[scenario\n", "not valid TOML"),
        ("", r"at least one \[\[phase\]\]"),
    ],
)  # fmt: skip
def test_bad_scenarios_say_what_is_wrong(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ScenarioError, match=needle) as caught:
        load_scenario(path)
    assert str(path) in str(caught.value)


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="No such file"):
        load_scenario(tmp_path / "nope.toml")
