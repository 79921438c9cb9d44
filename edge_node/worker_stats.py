"""Summing an edge node's workers into one node: metric samples for ``/metrics``, heartbeat
figures and load for the control-plane session. Pure code, no I/O.

Metric samples travel as rows ``[family, type, help, sample name, labels, value]``. The
supervisor keeps each worker's last rows (``SampleBook``); when a worker dies its counter,
histogram and summary rows are kept as retired totals, so the node's counters never go
back (a Prometheus counter reset would read as a burst of zero), while its gauges go with
it. Each worker shows on ``/metrics`` its own live samples plus the sum of everyone else's
(``merged_families``).

Figures and load come as differences since a worker's last push, so summing them is
adding them up (``add_heartbeat``): nothing to undo when a worker restarts from zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from edge_node.figures import FiguresBook, decode_counts
from protos.edgecdn.v1 import nodes_pb2

# A sample's identity: family, type, help, sample name, sorted labels.
SampleKey = tuple[str, str, str, str, tuple[tuple[str, str], ...]]
SampleRows = list[list[Any]]
MONOTONIC_TYPES = frozenset({"counter", "histogram", "summary"})


def sample_rows(collector: Collector) -> SampleRows:
    """Every sample of ``collector`` (a registry) as rows for the wire."""
    rows: SampleRows = []
    for family in collector.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue  # a creation time: each worker keeps its own, a sum means nothing
            rows.append(
                [family.name, family.type, family.documentation, sample.name, sample.labels, sample.value]
            )
    return rows


def _key(row: list[Any]) -> SampleKey:
    family, kind, documentation, name, labels, _ = row
    return (str(family), str(kind), str(documentation), str(name), tuple(sorted(dict(labels).items())))


def sum_rows(workers: Iterable[SampleRows]) -> dict[SampleKey, float]:
    """Every sample summed over ``workers``."""
    total: dict[SampleKey, float] = {}
    for rows in workers:
        for row in rows:
            key = _key(row)
            total[key] = total.get(key, 0.0) + float(row[5])
    return total


def to_rows(summed: dict[SampleKey, float]) -> SampleRows:
    return [
        [family, kind, doc, name, dict(labels), value]
        for (family, kind, doc, name, labels), value in summed.items()
    ]


class SampleBook:
    """The supervisor's view of its workers' samples."""

    def __init__(self) -> None:
        self._live: dict[int, SampleRows] = {}
        self._retired: dict[SampleKey, float] = {}

    def update(self, worker: int, rows: SampleRows) -> None:
        self._live[worker] = rows

    def retire(self, worker: int) -> None:
        """``worker`` died: keep its monotonic samples' last values, forget its gauges."""
        rows = self._live.pop(worker, [])
        for key, value in sum_rows([[row for row in rows if row[1] in MONOTONIC_TYPES]]).items():
            self._retired[key] = self._retired.get(key, 0.0) + value

    def others(self, worker: int) -> SampleRows:
        """What ``worker`` adds to its own samples: everyone else's, and the retired totals."""
        summed = sum_rows(rows for index, rows in self._live.items() if index != worker)
        for key, value in self._retired.items():
            summed[key] = summed.get(key, 0.0) + value
        return to_rows(summed)


class MergedCollector(Collector):
    """``own``'s families with ``others`` (rows) added sample by sample; a sample only the
    others have joins its family, and a family only they have is added whole."""

    def __init__(self, own: Collector, others: SampleRows) -> None:
        self._own = own
        self._others = others

    def collect(self) -> Iterator[Metric]:
        extra = sum_rows([self._others])
        families: dict[str, Metric] = {}
        for family in self._own.collect():
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                key = (
                    family.name,
                    family.type,
                    family.documentation,
                    sample.name,
                    tuple(sorted(sample.labels.items())),
                )
                value = sample.value + extra.pop(key, 0.0)
                merged.samples.append(sample._replace(value=value))
            families[family.name] = merged
        for (family_name, kind, documentation, name, labels), value in extra.items():
            if family_name not in families:
                families[family_name] = Metric(family_name, documentation, kind)
            families[family_name].samples.append(Sample(name, dict(labels), value))
        yield from families.values()


def add_heartbeat(book: FiguresBook, heartbeat: nodes_pb2.Heartbeat) -> int:
    """Add a worker's figures since its last push to the node's book; the spans it dropped meanwhile."""
    for sent in heartbeat.figures:
        cell = book.cell(sent.app_name, sent.app_version)
        cell.requests += sent.requests
        cell.errors += sent.errors_5xx
        difference = decode_counts(list(sent.latency.counts))
        cell.latency = [before + d for before, d in zip(cell.latency, difference, strict=True)]
    return heartbeat.spans_dropped
