"""Recorders merge exactly: N workers' histograms add up to one run's."""

from __future__ import annotations

import json
import random

from simulator.load.recorder import Recorder


def test_merged_wire_forms_equal_one_recorder() -> None:
    rng = random.Random(3)
    samples: list[tuple[str, int, int, int, str, str | None]] = []
    for _ in range(20_000):
        status = rng.choice([200, 200, 200, 503, 0])
        samples.append((
            rng.choice(["KR", "US", "DE"]), int(rng.lognormvariate(7, 1.5)), rng.randrange(5),
            status, rng.choice(["r1", "r2", ""]), "timeout" if status == 0 else None,
        ))  # fmt: skip
    whole = Recorder()
    parts = [Recorder() for _ in range(4)]
    for i, sample in enumerate(samples):
        whole.record(*sample)
        parts[i % 4].record(*sample)
    merged = Recorder()
    for part in parts:
        merged.merge(json.loads(json.dumps(part.to_wire())))  # as it crosses the process boundary
    assert merged.total_requests() == whole.total_requests() == 20_000
    for code, stats in whole.countries.items():
        other = merged.countries[code]
        assert other.requests == stats.requests
        assert other.errors == stats.errors
        assert other.served_by == stats.served_by
        assert other.statuses == stats.statuses
        for percentile in (0, 50, 90, 99, 99.9, 100):
            assert other.latency.get_value_at_percentile(percentile) == stats.latency.get_value_at_percentile(
                percentile
            )
        assert other.latency.get_total_count() == stats.latency.get_total_count()
    assert set(merged.regions) == set(whole.regions) == {"r1", "r2", "unknown"}
    for region, histogram in whole.regions.items():
        assert merged.regions[region].get_value_at_percentile(99) == histogram.get_value_at_percentile(99)
    assert {s: t.requests for s, t in merged.timeline.items()} == {
        s: t.requests for s, t in whole.timeline.items()
    }


def test_transport_errors_have_no_latency_but_count() -> None:
    recorder = Recorder()
    recorder.record("KR", 5_000, 0, 0, "", "connect")
    recorder.record("KR", 1_000, 0, 200, "r1", None)
    stats = recorder.countries["KR"]
    assert stats.requests == 2
    assert dict(stats.errors) == {"connect": 1}
    assert stats.latency.get_total_count() == 1


def test_answers_by_region_per_second_and_region_errors_merge() -> None:
    first, second = Recorder(), Recorder()
    first.started_ts, second.started_ts = 1_000.5, 1_000.25
    first.record("KR", 1_000, 0, 200, "r1", None)
    first.record("KR", 1_000, 1, 503, "r1", None)
    first.record("KR", 1_000, 1, 0, "", "connect")  # no answer: no region
    second.record("KR", 1_000, 1, 200, "r2", None)
    second.record("JP", 1_000, 1, 200, "r2", "check")
    merged = Recorder()
    for part in (first, second):
        merged.merge(json.loads(json.dumps(part.to_wire())))
    assert {s: dict(t.regions) for s, t in merged.timeline.items()} == {0: {"r1": 1}, 1: {"r1": 1, "r2": 2}}
    assert dict(merged.region_errors) == {"r1": 1, "r2": 1}
    assert merged.started_ts == 1_000.25  # the earliest worker's second 0


def test_wire_forms_without_the_new_keys_still_merge() -> None:
    old = Recorder()
    old.record("KR", 1_000, 0, 200, "r1", None)
    wire = old.to_wire()
    del wire["region_errors"], wire["started_ts"]
    for tick in wire["timeline"].values():
        del tick["regions"]
    merged = Recorder.from_wire(wire)
    assert merged.total_requests() == 1
    assert merged.started_ts is None
