"""Pure decisions of a load run: who sends (the country mix), how much (phases) and when.

Open loop: the arrival process is driven by the cumulative rate Λ(t), the integral of the
phases' piecewise-linear rate. Arrival k happens at Λ⁻¹(s_k), where s_k = k for evenly
spaced (``constant``) arrivals and a sum of unit exponentials for ``poisson`` arrivals
(the time-rescaling theorem), so ramps and spikes need no special cases. Countries are
picked by smooth weighted round robin: shares are exact over any window, not just on
average.
"""

from __future__ import annotations

import math
import random
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from simulator.load.errors import BadInputError, ScenarioError

Arrival = Literal["constant", "poisson"]
PhaseKind = Literal["ramp", "steady", "spike"]
ARRIVALS: tuple[Arrival, ...] = ("constant", "poisson")
PHASE_KINDS: tuple[PhaseKind, ...] = ("ramp", "steady", "spike")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Mix:
    """Shares of traffic by country code; weights need not sum to 100."""

    weights: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        if not self.weights:
            raise BadInputError(field="mix", reason="names no country")
        codes = [code for code, _ in self.weights]
        if len(set(codes)) != len(codes):
            raise BadInputError(field="mix", reason=f"a country appears twice in {','.join(codes)}")
        for code, weight in self.weights:
            if not (weight > 0 and math.isfinite(weight)):
                raise BadInputError(
                    field="mix", reason=f"{code}'s share must be a positive number (got {weight})"
                )

    @property
    def countries(self) -> tuple[str, ...]:
        return tuple(code for code, _ in self.weights)

    def shares(self) -> dict[str, float]:
        total = sum(w for _, w in self.weights)
        return {code: w / total for code, w in self.weights}

    def split(self, total: int) -> dict[str, int]:
        """``total`` units (users, connections) by share, largest remainder; every country >= 1."""
        shares = self.shares()
        exact = {code: share * total for code, share in shares.items()}
        counts = {code: max(1, math.floor(value)) for code, value in exact.items()}
        by_remainder = sorted(exact, key=lambda c: exact[c] - math.floor(exact[c]), reverse=True)
        for code in by_remainder:
            if sum(counts.values()) >= total:
                break
            counts[code] += 1
        return counts


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """A stretch of the run: open loop from ``rate_start`` to ``rate_end`` (req/s), or
    closed loop with ``concurrency`` users; ``mix`` says where the clients are."""

    name: str
    kind: PhaseKind
    duration_s: float
    mix: Mix
    rate_start: float | None = None
    rate_end: float | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        where = f"phase {self.name!r}"
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise BadInputError(field=where, reason=f"duration must be positive (got {self.duration_s})")
        if (self.concurrency is None) == (self.rate_start is None):
            raise BadInputError(
                field=where, reason="give either a rate (open loop) or a concurrency (closed loop)"
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise BadInputError(
                field=where, reason=f"concurrency must be at least 1 (got {self.concurrency})"
            )
        for rate in (self.rate_start, self.rate_end):
            if rate is not None and not (rate >= 0 and math.isfinite(rate)):
                raise BadInputError(field=where, reason=f"rate must be a non-negative number (got {rate})")
        if self.rate_start is not None and max(self.rate_start, self.end_rate) <= 0:
            raise BadInputError(field=where, reason="rate must be above 0 somewhere in the phase")

    @property
    def open_loop(self) -> bool:
        return self.concurrency is None

    @property
    def end_rate(self) -> float:
        return self.rate_end if self.rate_end is not None else (self.rate_start or 0.0)

    def expected_requests(self) -> float:
        """Λ over the whole phase (open loop)."""
        return ((self.rate_start or 0.0) + self.end_rate) / 2 * self.duration_s

    def time_for(self, s: float) -> float:
        """Λ⁻¹: seconds into the phase at which the cumulative rate reaches ``s``."""
        r0, r1, d = self.rate_start or 0.0, self.end_rate, self.duration_s
        if r1 == r0:
            return s / r0
        a = (r1 - r0) / (2 * d)
        return (-r0 + math.sqrt(r0 * r0 + 4 * a * s)) / (2 * a)

    def scaled(self, factor: float) -> Phase:
        """This phase with its rate multiplied by ``factor`` (one worker's part)."""
        if self.rate_start is None:
            return self
        return Phase(
            name=self.name,
            kind=self.kind,
            duration_s=self.duration_s,
            mix=self.mix,
            rate_start=self.rate_start * factor,
            rate_end=None if self.rate_end is None else self.rate_end * factor,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The whole run: phases in order and the arrival process."""

    phases: tuple[Phase, ...]
    arrival: Arrival = "constant"
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.phases:
            raise BadInputError(field="phases", reason="a run needs at least one phase")
        if len({p.open_loop for p in self.phases}) != 1:
            raise BadInputError(field="phases", reason="all phases use a rate, or all use a concurrency")

    @property
    def open_loop(self) -> bool:
        return self.phases[0].open_loop

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    def countries(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for phase in self.phases:
            seen.update(dict.fromkeys(phase.mix.countries))
        return tuple(seen)

    def phase_at(self, t: float) -> tuple[int, float]:
        """Index of the phase running at ``t`` seconds and when it started."""
        start = 0.0
        for index, phase in enumerate(self.phases):
            if t < start + phase.duration_s:
                return index, start
            start += phase.duration_s
        return len(self.phases) - 1, start - self.phases[-1].duration_s


class CountryPicker:
    """Smooth weighted round robin (as in nginx's upstream balancing): exact shares."""

    __slots__ = ("_codes", "_current", "_total", "_weights")

    def __init__(self, mix: Mix) -> None:
        self._codes = list(mix.countries)
        self._weights = [w for _, w in mix.weights]
        self._total = sum(self._weights)
        self._current = [0.0] * len(self._codes)

    def next(self) -> str:
        best = 0
        for i, weight in enumerate(self._weights):
            self._current[i] += weight
            if self._current[i] > self._current[best]:
                best = i
        self._current[best] -= self._total
        return self._codes[best]


def arrivals(plan: Plan, *, seed: int, offset: float = 0.0) -> Iterator[tuple[float, str]]:
    """Intended send times (seconds from the start) and the country of each arrival.

    ``offset`` in [0, 1) shifts evenly spaced arrivals, so that N workers each running
    1/N of the rate with offsets i/N interleave into one evenly spaced stream.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible arrivals, not secrets
    poisson = plan.arrival == "poisson"
    s = rng.expovariate(1.0) if poisson else offset
    phase_start = 0.0
    for phase in plan.phases:
        total = phase.expected_requests()
        picker = CountryPicker(phase.mix)
        while s < total:
            yield phase_start + phase.time_for(s), picker.next()
            s += rng.expovariate(1.0) if poisson else 1.0
        s -= total
        phase_start += phase.duration_s


def parse_mix(text: str) -> Mix:
    """``KR=10,US=40,DE=50`` -> a Mix."""
    weights: list[tuple[str, float]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        code, sep, share = item.partition("=")
        if not sep:
            raise BadInputError(field="--mix", reason=f"{item!r} is not CC=SHARE (e.g. KR=10,US=40,DE=50)")
        try:
            value = float(share)
        except ValueError:
            raise BadInputError(field="--mix", reason=f"{share!r} is not a number (in {item!r})") from None
        weights.append((code.strip().upper(), value))
    return Mix(weights=tuple(weights))


def equal_mix(codes: tuple[str, ...], *, field_name: str = "--countries") -> Mix:
    if not codes:
        raise BadInputError(field=field_name, reason="names no country")
    return Mix(weights=tuple((code.upper(), 1.0) for code in codes))


def parse_duration(value: object, *, field_name: str) -> float:
    """``"30s"``, ``"2m"``, ``"500ms"``, ``"1h"`` or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    else:
        raise BadInputError(field=field_name, reason=f"{value!r} is not a duration like 30s, 2m, 500ms")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise BadInputError(field=field_name, reason=f"must be positive (got {value!r})")
    return seconds


def load_scenario(path: Path) -> Plan:
    """Read a scenario file (format: docs/load.md)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(path=str(path), reason=exc.strerror or str(exc)) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(path=str(path), reason=f"not valid TOML: {exc}") from exc
    try:
        return _scenario(data)
    except BadInputError as exc:
        raise ScenarioError(path=str(path), reason=str(exc)) from exc


def _scenario(data: dict[str, Any]) -> Plan:
    head = data.get("scenario", {})
    if not isinstance(head, dict):
        raise BadInputError(field="[scenario]", reason="must be a table")
    unknown = set(data) - {"scenario", "phase"}
    if unknown:
        raise BadInputError(
            field="scenario", reason=f"unknown keys {sorted(unknown)}; expected [scenario] and [[phase]]"
        )
    default_mix = _mix_value(head.get("mix"), "[scenario].mix") if "mix" in head else None
    arrival = head.get("arrival", "constant")
    if arrival not in ARRIVALS:
        raise BadInputError(
            field="[scenario].arrival", reason=f"must be one of {', '.join(ARRIVALS)} (got {arrival!r})"
        )
    raw_phases = data.get("phase")
    if not isinstance(raw_phases, list) or not raw_phases:
        raise BadInputError(field="phase", reason="needs at least one [[phase]] table")
    phases = tuple(_phase(i, raw, default_mix) for i, raw in enumerate(raw_phases, start=1))
    meta = {"name": str(head["name"])} if "name" in head else {}
    return Plan(phases=phases, arrival=arrival, meta=meta)


_PHASE_KEYS = {"name", "kind", "duration", "rate", "from_rate", "to_rate", "concurrency", "mix"}


def _phase(index: int, raw: object, default_mix: Mix | None) -> Phase:
    where = f"[[phase]] #{index}"
    if not isinstance(raw, dict):
        raise BadInputError(field=where, reason="must be a table")
    unknown = set(raw) - _PHASE_KEYS
    if unknown:
        raise BadInputError(field=where, reason=f"unknown keys {sorted(unknown)}")
    name = str(raw.get("name", f"phase-{index}"))
    kind = raw.get("kind", "steady")
    if kind not in PHASE_KINDS:
        raise BadInputError(
            field=where, reason=f"kind must be one of {', '.join(PHASE_KINDS)} (got {kind!r})"
        )
    if "duration" not in raw:
        raise BadInputError(field=where, reason="needs a duration")
    mix = _mix_value(raw["mix"], f"{where}.mix") if "mix" in raw else default_mix
    if mix is None:
        raise BadInputError(field=where, reason="needs a mix (or a mix in [scenario])")
    duration = parse_duration(raw["duration"], field_name=f"{where}.duration")
    if kind == "ramp":
        if "from_rate" not in raw or "to_rate" not in raw:
            raise BadInputError(field=where, reason="a ramp needs from_rate and to_rate")
        rates = (_number(raw["from_rate"], f"{where}.from_rate"), _number(raw["to_rate"], f"{where}.to_rate"))
        return Phase(
            name=name, kind=kind, duration_s=duration, mix=mix, rate_start=rates[0], rate_end=rates[1]
        )
    if ("rate" in raw) == ("concurrency" in raw):
        raise BadInputError(field=where, reason="give exactly one of rate and concurrency")
    if "rate" in raw:
        rate = _number(raw["rate"], f"{where}.rate")
        return Phase(name=name, kind=kind, duration_s=duration, mix=mix, rate_start=rate)
    users = raw["concurrency"]
    if not isinstance(users, int) or isinstance(users, bool):
        raise BadInputError(field=f"{where}.concurrency", reason=f"must be an integer (got {users!r})")
    return Phase(name=name, kind=kind, duration_s=duration, mix=mix, concurrency=users)


def _number(value: object, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise BadInputError(field=where, reason=f"must be a number (got {value!r})")


def _mix_value(value: object, where: str) -> Mix:
    if isinstance(value, str):
        return parse_mix(value)
    if isinstance(value, dict):
        return Mix(weights=tuple((str(k).upper(), _number(v, f"{where}.{k}")) for k, v in value.items()))
    raise BadInputError(
        field=where, reason="must be a table like { KR = 10, US = 90 } or a string 'KR=10,US=90'"
    )
