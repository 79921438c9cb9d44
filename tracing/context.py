"""W3C Trace Context (``traceparent``): parse, format, and fresh ids. Pure code.

Parsing follows the W3C rules a receiver must apply: version ``ff`` and all-zero ids are
invalid, unknown future versions are read by their first four fields, hex is lower-case.
An invalid header is treated as absent (the request starts a new trace).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

# version-trace_id-parent_id-flags, lower-case hex; later versions may append "-..." fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
SAMPLED_FLAG = 0x01


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceParent:
    """The caller's span: its trace id (16 bytes), span id (8 bytes) and sampled flag."""

    trace_id: bytes
    span_id: bytes
    sampled: bool
    tracestate: str = ""


def parse_traceparent(header: str | None, tracestate: str | None = None) -> TraceParent | None:
    """The parent named by a ``traceparent`` header, or None when absent or invalid."""
    if header is None:
        return None
    match = _TRACEPARENT.fullmatch(header.strip())
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = bytes.fromhex(trace_hex), bytes.fromhex(span_hex)
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceParent(
        trace_id=trace_id,
        span_id=span_id,
        sampled=bool(int(flags_hex, 16) & SAMPLED_FLAG),
        tracestate=(tracestate or "").strip(),
    )


def format_traceparent(trace_id: bytes, span_id: bytes, *, sampled: bool) -> str:
    return f"00-{trace_id.hex()}-{span_id.hex()}-{'01' if sampled else '00'}"


def new_trace_id(rng: random.Random) -> bytes:
    while True:
        value = rng.getrandbits(128)
        if value:
            return value.to_bytes(16, "big")


def new_span_id(rng: random.Random) -> bytes:
    while True:
        value = rng.getrandbits(64)
        if value:
            return value.to_bytes(8, "big")
