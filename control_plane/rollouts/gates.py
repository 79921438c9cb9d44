"""The health gate: judges a baking wave's figures against its limits (pure, no clock, no I/O).

Judged continuously, like Argo's background analysis: a wave fails as soon as it has enough
traffic and breaks a limit, and passes only once its bake is complete. Every verdict carries
the figures it was made on and a sentence a person understands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control_plane.rollouts import wording
from control_plane.rollouts.errors import InvalidValueError

# Rates are ratios of integers; a limit met exactly must not fail through float noise.
_EPSILON = 1e-9
ROLLING_BACK = ": rolling back"


@dataclass(frozen=True, slots=True, kw_only=True)
class GateLimits:
    """Limits a baking wave must stay within."""

    max_error_rate: float = 0.01
    max_p99_ms: float = 0.0  # 0: latency is not gated
    min_requests: int = 50
    require_traffic: bool = False
    max_error_increase: float | None = None  # points above the baseline's rate; None: not gated

    def __post_init__(self) -> None:
        _check_share("max_error_rate", self.max_error_rate)
        if not math.isfinite(self.max_p99_ms) or self.max_p99_ms < 0:
            raise InvalidValueError(
                field="max_p99_ms", reason=f"must be a latency >= 0 ms (0: not gated), not {self.max_p99_ms}"
            )
        if self.min_requests < 0:
            raise InvalidValueError(field="min_requests", reason=f"must be >= 0, not {self.min_requests}")
        if self.max_error_increase is not None:
            _check_share("max_error_increase", self.max_error_increase)

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_error_rate": self.max_error_rate,
            "max_p99_ms": self.max_p99_ms,
            "min_requests": self.min_requests,
            "require_traffic": self.require_traffic,
            "max_error_increase": self.max_error_increase,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateLimits:
        increase = data["max_error_increase"]
        return cls(
            max_error_rate=float(data["max_error_rate"]),
            max_p99_ms=float(data["max_p99_ms"]),
            min_requests=int(data["min_requests"]),
            require_traffic=bool(data["require_traffic"]),
            max_error_increase=None if increase is None else float(increase),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """What a set of regions served during a window: requests, 5xx answers, p99 latency."""

    requests: int = 0
    errors: int = 0
    p99_ms: float | None = None  # None when there were no requests
    # The regions' IoT gateways (rollouts that carry a gateway module): batches their module
    # processed, batches it failed (trap, limits, invalid output), and self-rollbacks.
    gateway_batches: int = 0
    gateway_errors: int = 0
    gateway_rollbacks: int = 0

    def __post_init__(self) -> None:
        if self.requests < 0 or not 0 <= self.errors <= self.requests:
            raise InvalidValueError(
                field="figures",
                reason=f"need 0 <= errors <= requests, got {self.errors} errors of {self.requests}",
            )
        if min(self.gateway_batches, self.gateway_errors, self.gateway_rollbacks) < 0:
            raise InvalidValueError(field="figures.gateway", reason="gateway counts must be >= 0")
        if self.p99_ms is not None and (not math.isfinite(self.p99_ms) or self.p99_ms < 0):
            raise InvalidValueError(field="figures.p99_ms", reason=f"must be >= 0, not {self.p99_ms}")

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def gateway_error_rate(self) -> float:
        attempts = self.gateway_batches + self.gateway_errors
        return self.gateway_errors / attempts if attempts else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "p99_ms": self.p99_ms,
            "gateway_batches": self.gateway_batches,
            "gateway_errors": self.gateway_errors,
            "gateway_rollbacks": self.gateway_rollbacks,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figures:
        p99 = data["p99_ms"]
        return cls(
            requests=int(data["requests"]),
            errors=int(data["errors"]),
            p99_ms=None if p99 is None else float(p99),
            # Absent in rollouts stored before gateways took part.
            gateway_batches=int(data.get("gateway_batches", 0)),
            gateway_errors=int(data.get("gateway_errors", 0)),
            gateway_rollbacks=int(data.get("gateway_rollbacks", 0)),
        )


NO_TRAFFIC = Figures()


@dataclass(frozen=True, slots=True, kw_only=True)
class Pass:
    """The bake is complete and no limit is broken."""

    figures: Figures
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Fail:
    """A limit is broken (or traffic was required and did not come): roll back."""

    figures: Figures
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending:
    """Nothing broken yet and the bake is not over: keep watching."""

    figures: Figures


Verdict = Pass | Fail | Pending


def judge(
    limits: GateLimits,
    wave_figures: Figures,
    baseline_figures: Figures | None,
    *,
    bake_elapsed_s: float,
    bake_s: float,
    wave_label: str,
) -> Verdict:
    """Judge a wave now: fail on a broken limit at any time, pass only after the bake.

    With fewer than ``min_requests`` a wave still fails when its errors alone settle it: at
    least ``CONCLUSIVE_REQUESTS`` requests and even the 99.9% lower bound of its 5xx share
    (Wilson) above the limit (a version whose true 5xx share is at the limit is wrongly
    failed this way well under 1% of the time). A broken version that the router ejects after a few failures
    gets little traffic; 25 failures in 25 requests must not pass on bake time alone.
    """
    enough = wave_figures.requests >= limits.min_requests
    gateways = broken_gateways(limits, wave_figures)  # judged however little edge traffic came
    broken = [gateways] if gateways else []
    if enough and not broken:
        broken = broken_limits(limits, wave_figures, baseline_figures)
    if broken:
        return Fail(figures=wave_figures, reason=f"{wave_label}: {', '.join(broken)}{ROLLING_BACK}")
    if not enough and conclusive_errors(limits, wave_figures):
        lower = wilson_lower_bound(wave_figures.errors, wave_figures.requests)
        reason = (
            f"{wave_label}: {describe_figures(wave_figures)}: fewer than "
            f"{wording.count(limits.min_requests)}, but 5xx is at least {wording.share(lower)} "
            "(99.9% confidence) "
            f"> {wording.limit_share(limits.max_error_rate)}{ROLLING_BACK}"
        )
        return Fail(figures=wave_figures, reason=reason)
    if bake_elapsed_s < bake_s:
        return Pending(figures=wave_figures)
    bake = f"after {wording.seconds(bake_s)} bake"
    # A wave with gateways is judged on what they processed, however little edge traffic came
    # (unless edge traffic is required).
    if not enough and (limits.require_traffic or not wave_figures.gateway_batches):
        too_few = (
            f"{wording.count(wave_figures.requests)} requests < {wording.count(limits.min_requests)} needed"
        )
        if limits.require_traffic:
            reason = f"{wave_label}: {too_few} {bake} and traffic is required{ROLLING_BACK}"
            return Fail(figures=wave_figures, reason=reason)
        return Pass(figures=wave_figures, reason=f"{wave_label}: {too_few}: passed on bake time alone {bake}")
    seen = describe_figures(wave_figures)
    return Pass(figures=wave_figures, reason=f"{wave_label}: {seen} within limits {bake}: passed")


CONCLUSIVE_REQUESTS = 10
_Z = 3.290527  # the two-sided 99.9% normal quantile


def wilson_lower_bound(errors: int, requests: int) -> float:
    """The 99.9% Wilson score lower bound of a share seen as ``errors`` of ``requests``."""
    if requests <= 0:
        return 0.0
    share = errors / requests
    z2 = _Z * _Z
    centre = share + z2 / (2 * requests)
    spread = _Z * math.sqrt(share * (1 - share) / requests + z2 / (4 * requests * requests))
    return max(0.0, (centre - spread) / (1 + z2 / requests))


def conclusive_errors(limits: GateLimits, figures: Figures) -> bool:
    """True when ``figures``' errors break the 5xx limit beyond doubt, however few requests."""
    return (
        figures.requests >= CONCLUSIVE_REQUESTS
        and wilson_lower_bound(figures.errors, figures.requests) > limits.max_error_rate + _EPSILON
    )


def describe_figures(figures: Figures) -> str:
    """``5xx 0.0% of 1,532 requests, p99 41 ms`` (and the gateways' batches when they count)."""
    seen = f"5xx {wording.share(figures.error_rate)} of {wording.count(figures.requests)} requests"
    if figures.p99_ms is not None:
        seen += f", p99 {wording.millis(figures.p99_ms)}"
    if figures.gateway_batches or figures.gateway_errors or figures.gateway_rollbacks:
        seen += (
            f"; gateways: {wording.count(figures.gateway_batches)} batches, "
            f"{wording.count(figures.gateway_errors)} module errors, "
            f"{wording.count(figures.gateway_rollbacks)} rollbacks"
        )
    return seen


def broken_gateways(limits: GateLimits, figures: Figures) -> str:
    """Why the wave's gateways fail it, or "": a gateway that rolled the module back by itself
    fails the wave at once (it found the module broken on real readings); module errors fail
    it when they break the error limit beyond doubt (the same 99.9% Wilson rule as 5xx)."""
    if figures.gateway_rollbacks:
        rollbacks = wording.count(figures.gateway_rollbacks)
        return f"{rollbacks} gateway module rollbacks (the module failed on gateways)"
    attempts = figures.gateway_batches + figures.gateway_errors
    if (
        attempts >= CONCLUSIVE_REQUESTS
        and wilson_lower_bound(figures.gateway_errors, attempts) > limits.max_error_rate + _EPSILON
    ):
        return (
            f"gateway module errors in {wording.share(figures.gateway_error_rate)} of "
            f"{wording.count(attempts)} batches > {wording.limit_share(limits.max_error_rate)}"
        )
    return ""


def broken_limits(limits: GateLimits, wave: Figures, baseline: Figures | None) -> list[str]:
    """Each broken limit as a phrase with its figures; empty when the wave is within limits."""
    broken: list[str] = []
    served = f"5xx {wording.share(wave.error_rate)} of {wording.count(wave.requests)} requests"
    if wave.error_rate > limits.max_error_rate + _EPSILON:
        broken.append(f"{served} > {wording.limit_share(limits.max_error_rate)}")
    if (
        limits.max_error_increase is not None
        and baseline is not None
        # A baseline with too little traffic says nothing about the previous version.
        and baseline.requests >= max(limits.min_requests, 1)
        and wave.error_rate > baseline.error_rate + limits.max_error_increase + _EPSILON
    ):
        broken.append(
            f"{served} is {wording.points(wave.error_rate - baseline.error_rate)} points above the "
            f"previous version's {wording.share(baseline.error_rate)} "
            f"(limit +{wording.points(limits.max_error_increase)})"
        )
    if limits.max_p99_ms > 0 and wave.p99_ms is not None and wave.p99_ms > limits.max_p99_ms + _EPSILON:
        broken.append(f"p99 {wording.millis(wave.p99_ms)} > {wording.millis(limits.max_p99_ms)}")
    return broken


def _check_share(field: str, value: float) -> None:
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise InvalidValueError(
            field=field, reason=f"must be a share between 0 and 1 (0.01 is 1%), not {value}"
        )
