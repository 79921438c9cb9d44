"""Fitting the backbone's constants to published RTTs, and checking them on held-out pairs.

Measurements live in ``deploy/local/backbone-rtt.toml``: sets of places (cloud regions'
metros) with a matrix or a list of measured round trips. In a set with ``held_out`` places,
the pairs between two held-out places are the check and every other pair is the fit set;
a set with no ``held_out`` is a cross-check only. :func:`fit` tunes the ``[model]``
constants by coordinate descent on the sum of squared relative errors of the fit set;
``python -m geo.backbone_fit`` refits and prints the tables of ``docs/world.md``.
"""

from __future__ import annotations

import statistics
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from geo.backbone import DEFAULT_BACKBONE, Backbone, BackboneConstants, load_backbone
from geo.backbone_paths import BackbonePaths

__all__ = ["DEFAULT_MEASUREMENTS", "ROLES", "Figures", "Measured", "figures", "fit", "load_measurements"]

DEFAULT_MEASUREMENTS = DEFAULT_BACKBONE.with_name("backbone-rtt.toml")


# What a measured pair is for, in the order the docs list them.
ROLES = ("held-out", "fit", "cross-check")


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """One published round trip between two places."""

    set_name: str
    a: str
    b: str
    a_point: tuple[float, float]
    b_point: tuple[float, float]
    rtt_ms: float
    # "fit", "held-out" or "cross-check"
    role: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """How well modeled RTTs match measured ones."""

    pairs: int
    within_25: float
    median_error: float
    worst_error: float


def load_measurements(path: Path = DEFAULT_MEASUREMENTS) -> tuple[Measured, ...]:
    """Every measured pair of every set in the file, with its role."""
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    pairs: list[Measured] = []
    for data in document["sets"]:
        points = {p["name"]: (float(p["latitude"]), float(p["longitude"])) for p in data["places"]}
        held = set(data.get("held_out", []))

        def role(a: str, b: str, held: set[str] = held) -> str:
            if not held:
                return "cross-check"
            return "held-out" if a in held and b in held else "fit"

        names = [p["name"] for p in data["places"]]
        if "rtt_ms" in data:
            matrix = data["rtt_ms"]
            for i, a in enumerate(names):
                for j in range(i + 1, len(names)):
                    b = names[j]
                    both = [v for v in (matrix[i][j], matrix[j][i]) if v]
                    pairs.append(
                        _measured(data["name"], a, b, points, rtt=statistics.fmean(both), role=role(a, b))
                    )
        for a, b, value in data.get("pairs", []):
            pairs.append(_measured(data["name"], a, b, points, rtt=float(value), role=role(a, b)))
    return tuple(pairs)


def _measured(
    set_name: str, a: str, b: str, points: dict[str, tuple[float, float]], *, rtt: float, role: str
) -> Measured:
    return Measured(set_name=set_name, a=a, b=b, a_point=points[a], b_point=points[b], rtt_ms=rtt, role=role)


def errors(paths: BackbonePaths, pairs: Iterable[Measured]) -> list[tuple[Measured, float, float]]:
    """(pair, modeled RTT, relative error) for each pair."""
    out = []
    for pair in pairs:
        modeled = paths.route(pair.a_point, pair.b_point).rtt_ms
        out.append((pair, modeled, (modeled - pair.rtt_ms) / pair.rtt_ms))
    return out


def figures(paths: BackbonePaths, pairs: Iterable[Measured]) -> Figures:
    errs = [abs(e) for _, _, e in errors(paths, pairs)]
    return Figures(
        pairs=len(errs),
        within_25=sum(e <= 0.25 for e in errs) / len(errs),
        median_error=statistics.median(errs),
        worst_error=max(errs),
    )


def score(backbone: Backbone, pairs: Iterable[Measured]) -> float:
    """Sum of squared relative errors: short and long paths count alike."""
    return sum(e * e for _, _, e in errors(BackbonePaths(backbone), pairs))


# The constants the fit tunes, each with its lower bound and first step.
_SCALARS: dict[str, tuple[float, float]] = {
    "base_ms": (0.0, 1.0),
    "access_route_factor": (1.0, 0.2),
    "terrestrial_route_factor": (1.0, 0.1),
    "submarine_route_factor": (1.0, 0.05),
}
_HOP_STEP = 1.0


def _nudge(constants: BackboneConstants, name: str, delta: float) -> BackboneConstants | None:
    if name.startswith("hop_ms."):
        continent = name.removeprefix("hop_ms.")
        value = round(constants.hop_ms[continent] + delta, 4)
        if value < 0:
            return None
        return replace(constants, hop_ms=MappingProxyType({**constants.hop_ms, continent: value}))
    value = round(getattr(constants, name) + delta, 4)
    if value < _SCALARS[name][0]:
        return None
    return replace(constants, **{name: value})


def fit(
    backbone: Backbone,
    pairs: tuple[Measured, ...],
    *,
    rounds: int = 10,
    progress: Callable[[str], None] | None = None,
) -> Backbone:
    """Coordinate descent from the backbone's constants; steps halve each round."""
    # Continents without a hub have no hop cost to fit.
    continents = sorted({hub.continent for hub in backbone.hubs})
    names = [*_SCALARS, *(f"hop_ms.{c}" for c in continents)]
    steps = {name: _SCALARS[name][1] if name in _SCALARS else _HOP_STEP for name in names}
    best = score(backbone, pairs)
    for round_index in range(rounds):
        for name in names:
            for direction in (1, -1):
                while True:
                    constants = _nudge(backbone.constants, name, direction * steps[name])
                    if constants is None:
                        break
                    candidate = backbone.with_constants(constants)
                    value = score(candidate, pairs)
                    if value >= best:
                        break
                    backbone, best = candidate, value
        if progress:
            progress(f"round {round_index + 1}: score {best:.4f} {backbone.constants}")
        steps = {name: step / 2 for name, step in steps.items()}
    return backbone


def _table(rows: list[tuple[Measured, float, float]]) -> str:
    lines = [
        "| Place A | Place B | Measured RTT (ms) | Modeled RTT (ms) | Error |",
        "|---|---|---:|---:|---:|",
    ]
    for pair, modeled, error in sorted(rows, key=lambda r: (r[0].a, r[0].b)):
        lines.append(f"| {pair.a} | {pair.b} | {pair.rtt_ms:.1f} | {modeled:.1f} | {error:+.0%} |")
    return "\n".join(lines)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    backbone = load_backbone(DEFAULT_BACKBONE)
    pairs = load_measurements()
    if "--refit" in args:
        backbone = fit(backbone, tuple(p for p in pairs if p.role == "fit"), progress=_say)
        _say(str(backbone.constants))
    paths = BackbonePaths(backbone)
    for role in ROLES:
        chosen = [p for p in pairs if p.role == role]
        f = figures(paths, chosen)
        _say(
            f"\n{role}: {f.pairs} pairs, {f.within_25:.0%} within ±25%, "
            f"median error {f.median_error:.1%}, worst {f.worst_error:.0%}"
        )
        if "--tables" in args:
            table = _table(errors(paths, chosen))
            _say(f"\n<!-- backbone-{role}:start -->\n{table}\n<!-- backbone-{role}:end -->")
    return 0


if __name__ == "__main__":
    sys.exit(main())
