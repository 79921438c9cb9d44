"""Parent-based trace-id-ratio sampling, the same decision as OpenTelemetry's
``ParentBased(TraceIdRatioBased(ratio))``: follow a remote parent's sampled flag; for a new
trace, sample when the trace id's low 64 bits fall under ``ratio * 2**64``, so every
process that sees the same trace id decides the same way. Pure code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracing.context import TraceParent

_MAX_BOUND = 1 << 64


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentBasedRatioSampler:
    """Sample ``ratio`` (0..1) of new traces; continue what a parent decided."""

    ratio: float
    bound: int = field(init=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"sample ratio {self.ratio} is not within [0, 1]")
        object.__setattr__(self, "bound", round(self.ratio * _MAX_BOUND))

    def should_sample(self, trace_id: bytes, parent: TraceParent | None) -> bool:
        if parent is not None:
            return parent.sampled
        return int.from_bytes(trace_id[8:], "big") < self.bound
