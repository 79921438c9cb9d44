"""Chaos scenarios: parsing refuses what is wrong with where, and planning ends healed."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.chaos.faults import Fault
from simulator.chaos.scenario import Scenario, Step, load_scenario, parse_scenario, plan
from simulator.errors import ChaosError
from tests.conftest import REPO_ROOT

EXAMPLE = """
name = "Seoul goes dark, Frankfurt gets slow"
[[fault]]
at = "10s"
action = "kill"
target = "ap-northeast-2"
[[fault]]
at = "30s"
action = "wan"
target = "eu-central-1"
latency = "200ms"
loss = "5%"
for = "20s"
[[fault]]
at = "5s"
action = "partition"
target = "ap-northeast-1"
for = "1m"
"""


def test_a_scenario_file_is_read_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(EXAMPLE)
    scenario = load_scenario(path)
    assert scenario.name == "Seoul goes dark, Frankfurt gets slow"
    assert [(step.at_s, step.fault.action) for step in scenario.steps] == [
        (5.0, "partition"),
        (10.0, "kill"),
        (30.0, "wan"),
    ]
    assert scenario.steps[2].fault == Fault(
        action="wan", target="eu-central-1", latency_ms=200, loss=0.05, for_s=20
    )
    assert scenario.duration_s == 65.0  # the partition's end


def test_plan_undoes_every_bounded_fault_at_its_end(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(EXAMPLE)
    moments = [(m.at_s, m.what, m.fault.action) for m in plan(load_scenario(path))]
    assert moments == [
        (5.0, "inject", "partition"),
        (10.0, "inject", "kill"),
        (30.0, "inject", "wan"),
        (50.0, "undo", "wan"),
        (65.0, "undo", "partition"),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "needs at least one"),
        ('nme = "x"\n[[fault]]\nat="1s"\naction="heal"', "unknown key 'nme'"),
        ('[[fault]]\nat = "1s"\naction = "kil"\ntarget = "x"', "fault 1: unknown action 'kil'"),
        ('[[fault]]\nat = "1s"\naction = "kill"\ntarget = "x"\nfor = "3s"', "fault 1: kill is instant"),
        ('[[fault]]\nat = "soon"\naction = "heal"', "fault 1: at: 'soon' is not a duration"),
        ('[[fault]]\nat = "1s"\naction = "kill"\ntargte = "x"', "fault 1: unknown key 'targte'"),
        ('[[fault]]\naction = "heal"', "fault 1: needs `at` and `action`"),
        ('duration = "5s"\n[[fault]]\nat = "1s"\naction = "freeze"\ntarget = "x"\nfor = "9s"', "ends before"),
        ("[[fault", "not a TOML scenario"),
    ],
)
def test_bad_scenarios_say_what_and_where(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ChaosError, match=problem) as caught:
        load_scenario(path)
    assert str(path) in str(caught.value)


def test_a_missing_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ChaosError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.toml")


lasting = st.builds(
    lambda action, at, for_s: Step(
        at_s=at, fault=Fault(action=action, target="r", for_s=for_s, latency_ms=1)
    ),
    st.sampled_from(["freeze", "partition", "wan"]),
    st.floats(min_value=0, max_value=1000),
    st.one_of(st.none(), st.floats(min_value=0.001, max_value=1000)),
)


@given(steps=st.lists(lasting, min_size=1, max_size=20))
def test_every_bounded_fault_is_undone_after_it_is_injected(steps: list[Step]) -> None:
    moments = plan(Scenario(name="x", steps=tuple(steps), duration_s=2000))
    assert [m.at_s for m in moments] == sorted(m.at_s for m in moments)
    for step in steps:
        if step.fault.for_s is None:
            continue
        undo = next(m for m in moments if m.what == "undo" and m.fault is step.fault)
        assert undo.at_s == step.at_s + step.fault.for_s
    assert sum(m.what == "undo" for m in moments) == sum(s.fault.for_s is not None for s in steps)


def test_parse_scenario_names_its_source() -> None:
    with pytest.raises(ChaosError, match=r"^inline: a scenario needs"):
        parse_scenario({}, source="inline")


def test_the_shipped_example_scenario_reads_and_ends_healed() -> None:
    scenario = load_scenario(REPO_ROOT / "deploy" / "local" / "chaos.toml")
    moments = plan(scenario)
    injected = [m.fault for m in moments if m.what == "inject" and m.fault.for_s is not None]
    undone = [m.fault for m in moments if m.what == "undo"]
    assert injected == undone
    assert max(m.at_s for m in moments) <= scenario.duration_s
