"""Parse the operator's wave spec (``ap-northeast-2;ap-northeast-1,ap-south-1;*``) into explicit regions.

The machine only ever sees explicit regions: ``*`` is expanded here, once, when the rollout
starts, so a region that appears later never joins a rollout behind the operator's back.
"""

from __future__ import annotations

from collections.abc import Iterable

from control_plane.rollouts.errors import RolloutSpecError

ALL_REMAINING = "*"


def parse_waves(spec: str, known_regions: Iterable[str]) -> list[list[str]]:
    """``;`` separates waves, ``,`` regions within one, ``*`` is every known region named in no other wave."""
    known = sorted(set(known_regions))
    if not spec.strip():
        raise _error("no waves given; e.g. 'ap-northeast-2;ap-northeast-1,ap-south-1;*'")
    waves = [[item.strip() for item in part.split(",")] for part in spec.split(";")]
    for number, wave in enumerate(waves, start=1):
        if wave == [""]:
            raise _error(f"wave {number} is empty (two ';' in a row, or one at an end)")
        if "" in wave:
            raise _error(f"wave {number} has an empty region name (two ',' in a row, or one at an end)")
    if sum(wave.count(ALL_REMAINING) for wave in waves) > 1:
        raise _error("'*' (every remaining region) may appear only once")
    _refuse_unknown(waves, known)
    _refuse_duplicates(waves)
    named = {region for wave in waves for region in wave}
    expanded: list[list[str]] = []
    for number, wave in enumerate(waves, start=1):
        if ALL_REMAINING not in wave:
            expanded.append(wave)
            continue
        rest = [region for region in known if region not in named]
        regions = [region for region in wave if region != ALL_REMAINING] + rest
        if not regions:
            raise _error(f"wave {number} ('*') is empty: every known region is already in another wave")
        expanded.append(regions)
    return expanded


def _refuse_unknown(waves: list[list[str]], known: list[str]) -> None:
    known_set = set(known)
    unknown = [
        f"{region} (wave {number})"
        for number, wave in enumerate(waves, start=1)
        for region in wave
        if region != ALL_REMAINING and region not in known_set
    ]
    if unknown:
        raise _error(
            f"unknown region{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known: {', '.join(known) or 'none'}"
        )


def _refuse_duplicates(waves: list[list[str]]) -> None:
    where: dict[str, list[int]] = {}
    for number, wave in enumerate(waves, start=1):
        for region in wave:
            if region != ALL_REMAINING:
                where.setdefault(region, []).append(number)
    repeated = [_where(region, numbers) for region, numbers in where.items() if len(numbers) > 1]
    if repeated:
        raise _error(f"a region may be in one wave only: {'; '.join(repeated)}")


def _where(region: str, numbers: list[int]) -> str:
    if len(set(numbers)) == 1:
        return f"{region} (twice in wave {numbers[0]})"
    return f"{region} (waves {', '.join(map(str, sorted(set(numbers))))})"


def _error(reason: str) -> RolloutSpecError:
    return RolloutSpecError(field="waves", reason=reason)
