"""Chaos scenarios: a timeline of faults in a TOML file, parsed and planned (pure, no I/O).

    name = "Seoul goes dark, Frankfurt gets slow"
    duration = "90s"            # optional: when the scenario ends and heals what is left

    [[fault]]
    at = "10s"                  # since the scenario started
    action = "kill"             # kill | freeze | thaw | partition | wan | heal
    target = "ap-northeast-2"   # as `edgecdn chaos` takes it
    signal = "KILL"             # kill only; KILL (default), TERM or INT

    [[fault]]
    at = "30s"
    action = "wan"
    target = "eu-central-1"
    latency = "200ms"
    loss = "5%"
    for = "20s"                 # lasting faults (freeze, partition, wan): healed after this

:func:`plan` turns a scenario into the moments to act: each fault at its ``at``, and the
undoing of each bounded fault at ``at + for``; a scenario always ends healed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from simulator.chaos.faults import ACTIONS, Fault, parse_loss, parse_seconds
from simulator.errors import ChaosError

FAULT_KEYS = frozenset({"at", "action", "target", "signal", "for", "latency", "loss"})
TOP_KEYS = frozenset({"name", "duration", "fault"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """A fault and when, in seconds since the scenario started."""

    at_s: float
    fault: Fault


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    duration_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Moment:
    """One thing the runner does: ``inject`` a fault, or ``undo`` a bounded one when its time is up."""

    at_s: float
    what: Literal["inject", "undo"]
    fault: Fault


def load_scenario(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ChaosError(f"{path}: no such scenario file") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ChaosError(f"{path}: not a TOML scenario: {exc}") from exc
    return parse_scenario(data, source=str(path))


def parse_scenario(data: Mapping[str, Any], *, source: str) -> Scenario:
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ChaosError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(TOP_KEYS))})")
    faults = data.get("fault", [])
    if not isinstance(faults, list) or not faults:
        raise ChaosError(f"{source}: a scenario needs at least one [[fault]]")
    steps = tuple(
        sorted((_step(item, where=f"{source}: fault {index + 1}") for index, item in enumerate(faults)),
               key=lambda step: step.at_s)
    )  # fmt: skip
    last_end = max(step.at_s + (step.fault.for_s or 0.0) for step in steps)
    duration_s = last_end
    if "duration" in data:
        duration_s = parse_seconds(str(data["duration"]), what=f"{source}: duration")
        if duration_s < last_end:
            raise ChaosError(f"{source}: duration {duration_s:g}s ends before its last fault ({last_end:g}s)")
    return Scenario(name=str(data.get("name", Path(source).stem)), steps=steps, duration_s=duration_s)


def _step(item: object, *, where: str) -> Step:
    if not isinstance(item, dict):
        raise ChaosError(f"{where}: a [[fault]] table, not {type(item).__name__}")
    unknown = sorted(set(item) - FAULT_KEYS)
    if unknown:
        raise ChaosError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(FAULT_KEYS))})")
    if "at" not in item or "action" not in item:
        raise ChaosError(f"{where}: needs `at` and `action`")
    action = str(item["action"])
    if action not in ACTIONS:
        raise ChaosError(f"{where}: unknown action {action!r} (one of {', '.join(ACTIONS)})")
    at_s = parse_seconds(str(item["at"]), what=f"{where}: at")
    try:
        fault = Fault(
            action=action,  # checked against ACTIONS above
            target=str(item.get("target", "")),
            signal=str(item.get("signal", "KILL")).upper().removeprefix("SIG"),
            for_s=parse_seconds(str(item["for"]), what=f"{where}: for") if "for" in item else None,
            latency_ms=parse_seconds(str(item.get("latency", "0")), what=f"{where}: latency") * 1000,
            loss=parse_loss(str(item.get("loss", "0"))),
        )
    except ChaosError as exc:
        raise ChaosError(f"{where}: {exc}") from exc
    return Step(at_s=at_s, fault=fault)


def plan(scenario: Scenario) -> list[Moment]:
    """Every moment of ``scenario`` in time order; at equal times, undoing comes before injecting."""
    moments = [Moment(at_s=step.at_s, what="inject", fault=step.fault) for step in scenario.steps]
    moments += [
        Moment(at_s=step.at_s + step.fault.for_s, what="undo", fault=step.fault)
        for step in scenario.steps
        if step.fault.for_s is not None
    ]
    return sorted(moments, key=lambda moment: (moment.at_s, moment.what != "undo"))
