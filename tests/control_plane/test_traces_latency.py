"""The latency histogram of heartbeat figures: the layout both processes fill, exact merging,
percentiles within 1%, and the wire encoding from the node's side to the control plane's."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from control_plane.traces.latency import (
    HIGHEST_US,
    MAX_BUCKET,
    Latency,
    LayoutError,
    bucket_bounds,
    bucket_of,
    decode,
    encode,
    merge_all,
)
from edge_node.figures import decode_counts, encode_counts
from edge_node.metrics import LATENCY_BUCKET_COUNT, latency_bucket
from protos.edgecdn.v1 import common_pb2

micros = st.integers(min_value=0, max_value=HIGHEST_US)
samples = st.lists(micros, min_size=1, max_size=300)


def exact_percentile(values: list[int], percent: float) -> int:
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


@given(st.integers(min_value=-5, max_value=2 * HIGHEST_US))
def test_the_node_and_the_control_plane_fill_the_same_layout(value: int) -> None:
    assert latency_bucket(value) == bucket_of(value)
    assert 0 <= bucket_of(value) <= MAX_BUCKET < LATENCY_BUCKET_COUNT


@given(micros)
def test_a_bucket_holds_its_values_and_is_at_most_1_128th_wide(value: int) -> None:
    low, high = bucket_bounds(bucket_of(value))
    assert low <= value <= high
    assert high - low + 1 <= max(1, low / 128)


def test_buckets_are_contiguous() -> None:
    previous_high = -1
    for index in range(MAX_BUCKET + 1):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1
        previous_high = high
    assert bucket_bounds(MAX_BUCKET)[0] <= HIGHEST_US <= bucket_bounds(MAX_BUCKET)[1]


@given(samples, st.sampled_from([50.0, 90.0, 95.0, 99.0, 99.9, 100.0]))
def test_percentiles_are_within_one_percent(values: list[int], percent: float) -> None:
    found = Latency.from_values(values).percentile(percent)
    expected = exact_percentile(values, percent)
    assert found is not None
    assert abs(found - expected) <= 0.01 * expected


@given(samples, samples, samples)
def test_merging_is_associative_and_commutative(a: list[int], b: list[int], c: list[int]) -> None:
    x, y, z = (Latency.from_values(v) for v in (a, b, c))
    assert x.merge(y).merge(z) == x.merge(y.merge(z)) == merge_all([z, x, y])
    assert x.merge(y) == y.merge(x)


@given(st.lists(samples, min_size=1, max_size=8))
def test_deltas_add_up_to_the_whole(chunks: list[list[int]]) -> None:
    whole = [value for chunk in chunks for value in chunk]
    merged = merge_all(Latency.from_values(chunk) for chunk in chunks)
    assert merged == Latency.from_values(whole)
    assert merged.total == len(whole)
    assert merged.percentile(99) == Latency.from_values(whole).percentile(99)


@given(samples)
def test_wire_round_trip_from_the_nodes_encoding(values: list[int]) -> None:
    counts = [0] * LATENCY_BUCKET_COUNT
    for value in values:
        counts[latency_bucket(value)] += 1
    wire = common_pb2.LatencyHistogram(layout=common_pb2.LATENCY_LAYOUT_LOG_LINEAR_US_2SF)
    wire.counts.extend(encode_counts(counts))
    assert decode(wire) == Latency.from_values(values)
    assert decode_counts(list(encode(Latency.from_values(values)).counts)) == counts


def test_an_empty_histogram_has_no_percentile() -> None:
    assert decode(common_pb2.LatencyHistogram()).percentile(99) is None


def test_a_histogram_that_breaks_its_layout_is_refused() -> None:
    unknown = common_pb2.LatencyHistogram(layout=common_pb2.LATENCY_LAYOUT_UNSPECIFIED, counts=[1])
    beyond = common_pb2.LatencyHistogram(
        layout=common_pb2.LATENCY_LAYOUT_LOG_LINEAR_US_2SF, counts=[-5000, 1]
    )
    for wire in (unknown, beyond):
        try:
            decode(wire)
        except LayoutError:
            continue
        raise AssertionError(f"accepted {wire}")
