"""Latency histograms as nodes send them with their heartbeats, as values. Pure code.

The layout is the wire contract ``LATENCY_LAYOUT_LOG_LINEAR_US_2SF`` (protos/edgecdn/v1/
common.proto): HdrHistogram's bucket layout with 2 significant figures over integer
microseconds, so a bucket is at most 1/128 of its values wide and a percentile read at a
bucket's midpoint is within 0.4% of the true value (values up to a minute). The edge node
fills the same layout (``edge_node.metrics.latency_bucket``; processes share no code, so a
test checks the two agree). ``Latency`` is a sparse, immutable histogram: merging is
associative and commutative, which is what adding up deltas from many nodes and many time
buckets needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from protos.edgecdn.v1 import common_pb2

SUB_BUCKET_BITS = 8  # 256 sub-buckets: 2 significant figures
HALF = 1 << (SUB_BUCKET_BITS - 1)
HIGHEST_US = 60_000_000  # a minute; slower answers are counted as a minute
LAYOUT = common_pb2.LATENCY_LAYOUT_LOG_LINEAR_US_2SF


def bucket_of(micros: int) -> int:
    """The bucket of a latency in microseconds (clamped to [0, HIGHEST_US])."""
    value = min(max(micros, 0), HIGHEST_US)
    shift = value.bit_length() - SUB_BUCKET_BITS
    if shift <= 0:
        return value
    return HALF * shift + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The lowest and highest microsecond values bucket ``index`` holds."""
    if index < 2 * HALF:
        return index, index
    shift = index // HALF - 1
    base = index % HALF + HALF
    return base << shift, ((base + 1) << shift) - 1


def bucket_value(index: int) -> float:
    """The value a bucket stands for: its midpoint (exact below 256 µs)."""
    low, high = bucket_bounds(index)
    return (low + high) / 2


MAX_BUCKET = bucket_of(HIGHEST_US)


@dataclass(frozen=True, slots=True)
class Latency:
    """A sparse latency histogram: ``(bucket, count)`` pairs, buckets ascending, counts > 0."""

    buckets: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_counts(cls, counts: Mapping[int, int]) -> Latency:
        return cls(tuple(sorted((index, count) for index, count in counts.items() if count > 0)))

    @classmethod
    def from_values(cls, micros: Iterable[int]) -> Latency:
        counts: dict[int, int] = {}
        for value in micros:
            index = bucket_of(value)
            counts[index] = counts.get(index, 0) + 1
        return cls.from_counts(counts)

    @property
    def total(self) -> int:
        return sum(count for _, count in self.buckets)

    def merge(self, other: Latency) -> Latency:
        return merge_all((self, other))

    def percentile(self, percent: float) -> float | None:
        """The value (µs) at or below which ``percent`` of the recorded values lie; None
        when empty. The rank is ``ceil(percent / 100 * total)`` (at least 1), as the
        nearest-rank definition has it."""
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(min(max(percent, 0.0), 100.0) / 100 * total))
        seen = 0
        for index, count in self.buckets:
            seen += count
            if seen >= rank:
                return bucket_value(index)
        return bucket_value(self.buckets[-1][0])  # unreachable: seen ends at total

    def percentile_ms(self, percent: float) -> float | None:
        value = self.percentile(percent)
        return None if value is None else value / 1000


EMPTY = Latency()


def merge_all(histograms: Iterable[Latency]) -> Latency:
    """The sum of ``histograms`` (bucket by bucket)."""
    counts: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.buckets:
            counts[index] = counts.get(index, 0) + count
    return Latency.from_counts(counts)


def add_into(counts: dict[int, int], histogram: Latency) -> None:
    """Add ``histogram`` into a mutable bucket -> count map (accumulating without copies)."""
    for index, count in histogram.buckets:
        counts[index] = counts.get(index, 0) + count


class LayoutError(ValueError):
    """A histogram on the wire that does not follow its layout."""


def decode(message: common_pb2.LatencyHistogram) -> Latency:
    """A wire histogram as a value; LayoutError for an unknown layout or bad counts."""
    if not message.counts:
        return EMPTY
    if message.layout != LAYOUT:
        raise LayoutError(f"unknown latency layout {message.layout}")
    counts: dict[int, int] = {}
    index = 0
    for value in message.counts:
        if value < 0:
            index -= value
            continue
        if value > 0:
            if index > MAX_BUCKET:
                raise LayoutError(f"bucket {index} is beyond the layout's last ({MAX_BUCKET})")
            counts[index] = value
        index += 1
    return Latency.from_counts(counts)


def encode(latency: Latency) -> common_pb2.LatencyHistogram:
    """A value as a wire histogram (zero runs as negative counts)."""
    message = common_pb2.LatencyHistogram(layout=LAYOUT)
    following = 0
    for index, count in latency.buckets:
        if index > following:
            message.counts.append(following - index)
        message.counts.append(count)
        following = index + 1
    return message
