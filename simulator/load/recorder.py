"""What the simulated clients felt: HDR histograms per country, per serving region and per
second, error counts by kind and status, who served whom, answers per region per second,
answers by app version (``x-edge-app``) per country and per region per second, and
answers by cache outcome (``x-cache``) per country and per serving region.

Latencies are recorded in microseconds from the request's *intended* send time. A
recorder turns into a JSON-able wire form (histograms in the standard compressed HDR
encoding) and recorders merge exactly: adding histograms loses nothing, so N workers'
percentiles are those of one run. ``started_ts`` is the wall clock (unix seconds) at
second 0 of the timeline, so the world's events can be placed on the same time axis.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
DIGITS = 3
TIMELINE_DIGITS = 2
UNKNOWN_REGION = "unknown"
NO_VERSION = "-"  # answers without x-edge-app: no app behind the path, or an older node


def new_histogram(digits: int = DIGITS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, digits)


def decode_histogram(encoded: str) -> HdrHistogram:
    histogram: HdrHistogram = HdrHistogram.decode(encoded)
    return histogram


def error_label(status: int, kind: str | None) -> str | None:
    """``None`` for a success; ``"timeout"``, ``"connect"``, ... or ``"status 503"`` otherwise."""
    if kind is not None:
        return kind
    if status >= 400:
        return f"status {status}"
    return None


@dataclass(slots=True, kw_only=True)
class CountryStats:
    """One country's figures."""

    latency: HdrHistogram = field(default_factory=new_histogram)
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)  # answers by app version
    cache: Counter[str] = field(default_factory=Counter)  # answers by x-cache (those with one)


@dataclass(slots=True, kw_only=True)
class Second:
    """One second of the run (by completion time)."""

    requests: int = 0
    errors: int = 0
    latency: HdrHistogram = field(default_factory=lambda: new_histogram(TIMELINE_DIGITS))
    # answers by serving region: a failover shows as one region's count moving to another
    regions: Counter[str] = field(default_factory=Counter)
    # answers by serving region, then app version: a rollout (and its rollback) shows as one
    # region's answers moving from one version to another; region totals are sums of these
    versions: dict[str, Counter[str]] = field(default_factory=dict)


class Recorder:
    """Mutable accumulator owned by one event loop; merge others with :meth:`merge`."""

    def __init__(self) -> None:
        self.countries: dict[str, CountryStats] = {}
        self.regions: dict[str, HdrHistogram] = {}
        self.region_errors: Counter[str] = Counter()  # answers that were errors (>= 400, check)
        self.region_cache: dict[str, Counter[str]] = {}  # answers by x-cache of each serving region
        self.timeline: dict[int, Second] = {}
        self.started_ts: float | None = None  # wall clock at second 0; the engine sets it
        self.unanswered = 0
        # open loop: how late the generator itself handed each request to its pool; when
        # this grows, the generator (not the server) is the bottleneck
        self.send_lag = new_histogram()

    def record(  # noqa: PLR0917 - once per request: positional calls are the cheap ones
        self,
        country: str,
        latency_us: int,
        second: int,
        status: int,
        region: str,
        kind: str | None,
        version: str = "",
        cache: str = "",
    ) -> None:
        """One outcome; ``version`` is the answer's ``x-edge-app`` value and ``cache`` its
        ``x-cache`` outcome ("" without the header)."""
        stats = self.countries.get(country)
        if stats is None:
            stats = self.countries[country] = CountryStats()
        stats.requests += 1
        tick = self.timeline.get(second)
        if tick is None:
            tick = self.timeline[second] = Second()
        tick.requests += 1
        label = error_label(status, kind)
        if label is not None:
            stats.errors[label] += 1
            tick.errors += 1
        if status == 0:
            return  # no answer, so no latency of an answer: counted as an error above
        value = min(max(latency_us, LOWEST_US), HIGHEST_US)
        stats.statuses[status] += 1
        stats.latency.record_value(value)
        tick.latency.record_value(value)
        region = region or UNKNOWN_REGION
        stats.served_by[region] += 1
        tick.regions[region] += 1
        if label is not None:
            self.region_errors[region] += 1
        if cache:
            stats.cache[cache] += 1
            counts = self.region_cache.get(region)
            if counts is None:
                counts = self.region_cache[region] = Counter()
            counts[cache] += 1
        version = version or NO_VERSION
        stats.versions[version] += 1
        versions = tick.versions.get(region)
        if versions is None:
            versions = tick.versions[region] = Counter()
        versions[version] += 1
        histogram = self.regions.get(region)
        if histogram is None:
            histogram = self.regions[region] = new_histogram()
        histogram.record_value(value)

    def ensure_country(self, country: str) -> None:
        self.countries.setdefault(country, CountryStats())

    def total_requests(self) -> int:
        return sum(s.requests for s in self.countries.values())

    def total_errors(self) -> int:
        return sum(s.errors.total() for s in self.countries.values())

    def region_versions(self) -> dict[str, Counter[str]]:
        """Answers by app version of each serving region, over the whole run."""
        totals: dict[str, Counter[str]] = {}
        for tick in self.timeline.values():
            for region, counts in tick.versions.items():
                totals.setdefault(region, Counter()).update(counts)
        return totals

    def to_wire(self) -> dict[str, Any]:
        return {
            "countries": {
                cc: {
                    "requests": s.requests,
                    "errors": dict(s.errors),
                    "statuses": {str(k): v for k, v in s.statuses.items()},
                    "served_by": dict(s.served_by),
                    "versions": dict(s.versions),
                    "cache": dict(s.cache),
                    "latency_hdr": s.latency.encode().decode("ascii"),
                }
                for cc, s in self.countries.items()
            },
            "regions": {region: h.encode().decode("ascii") for region, h in self.regions.items()},
            "timeline": {
                str(sec): {
                    "requests": t.requests,
                    "errors": t.errors,
                    "latency_hdr": t.latency.encode().decode("ascii"),
                    "regions": dict(t.regions),
                    "versions": {region: dict(counts) for region, counts in t.versions.items()},
                }
                for sec, t in self.timeline.items()
            },
            "region_errors": dict(self.region_errors),
            "region_cache": {region: dict(counts) for region, counts in self.region_cache.items()},
            "started_ts": self.started_ts,
            "unanswered": self.unanswered,
            "send_lag_hdr": self.send_lag.encode().decode("ascii"),
        }

    def merge(self, wire: dict[str, Any]) -> None:
        """Add another recorder's wire form into this one, exactly."""
        for cc, data in wire["countries"].items():
            stats = self.countries.setdefault(cc, CountryStats())
            stats.requests += int(data["requests"])
            stats.errors.update({str(k): int(v) for k, v in data["errors"].items()})
            stats.statuses.update({int(k): int(v) for k, v in data["statuses"].items()})
            stats.served_by.update({str(k): int(v) for k, v in data["served_by"].items()})
            stats.versions.update({str(k): int(v) for k, v in data.get("versions", {}).items()})
            stats.cache.update({str(k): int(v) for k, v in data.get("cache", {}).items()})
            stats.latency.add(decode_histogram(data["latency_hdr"]))
        for region, encoded in wire["regions"].items():
            self.regions.setdefault(region, new_histogram()).add(decode_histogram(encoded))
        for sec, data in wire["timeline"].items():
            tick = self.timeline.setdefault(int(sec), Second())
            tick.requests += int(data["requests"])
            tick.errors += int(data["errors"])
            tick.latency.add(decode_histogram(data["latency_hdr"]))
            tick.regions.update({str(k): int(v) for k, v in data.get("regions", {}).items()})
            for region, counts in data.get("versions", {}).items():
                versions = tick.versions.setdefault(str(region), Counter())
                versions.update({str(k): int(v) for k, v in counts.items()})
        self.region_errors.update({str(k): int(v) for k, v in wire.get("region_errors", {}).items()})
        for region, counts in wire.get("region_cache", {}).items():
            self.region_cache.setdefault(str(region), Counter()).update(
                {str(k): int(v) for k, v in counts.items()}
            )
        started = wire.get("started_ts")
        if started is not None:  # workers start a little apart: the earliest is second 0
            self.started_ts = float(started) if self.started_ts is None else min(self.started_ts, started)
        self.unanswered += int(wire.get("unanswered", 0))
        if "send_lag_hdr" in wire:
            self.send_lag.add(decode_histogram(wire["send_lag_hdr"]))

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Recorder:
        recorder = cls()
        recorder.merge(wire)
        return recorder
