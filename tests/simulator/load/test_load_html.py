"""The HTML report's event markers, events table, region table and region time series."""

from __future__ import annotations

import json
import random
from html.parser import HTMLParser
from typing import Any

from runtime.events import WorldEvent
from simulator.load.charts import LEFT, RIGHT, WIDTH
from simulator.load.events import report_events
from simulator.load.html import render_html
from simulator.load.recorder import Recorder
from simulator.load.report import build_report

ORIGIN = 1_700_000_000.0
TIME_CHARTS = ("chart-rate", "chart-p99", "chart-regions")


class _Svg(HTMLParser):
    """Every element with its attributes, the chart (svg id) and table row it is in, and text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self.data = ""
        self._svg: str | None = None
        self._table: str | None = None
        self._open: list[dict[str, Any]] = []
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self._svg = values["id"]
        if tag == "table":
            self._table = values.get("id")
        element = {"tag": tag, "attrs": values, "svg": self._svg, "table": self._table, "text": ""}
        self.elements.append(element)
        if tag not in {"line", "rect", "circle", "polyline", "meta"}:  # not void here: collect their text
            self._open.append(element)
        self._in_data = tag == "script" and values.get("id") == "edgecdn-load-data"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append(
            {"tag": tag, "attrs": values, "svg": self._svg, "table": self._table, "text": ""}
        )

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data += data
        for element in self._open:
            element["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None
        if tag == "table":
            self._table = None
        if tag == "script":
            self._in_data = False
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def find(self, tag: str, *, svg: str | None = None, cls: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.elements
            if e["tag"] == tag
            and (svg is None or e["svg"] == svg)
            and (cls is None or cls in e["attrs"].get("class", "").split())
        ]


def _failover_report(events: list[WorldEvent]) -> dict[str, Any]:
    """20 s from KR and DE; KR's region is down from second 8 to 13, KR served from JP meanwhile."""
    rng = random.Random(5)
    recorder = Recorder()
    recorder.started_ts = ORIGIN
    for second in range(20):
        for i in range(50):
            latency = int(rng.lognormvariate(8, 0.4))
            recorder.record("DE", latency, second, 200, "eu-central-1", None)
            if 8 <= second < 14:
                if second == 8 and i < 5:
                    recorder.record("KR", 3_000, second, 0, "", "connect")
                else:
                    recorder.record("KR", latency + 30_000, second, 200, "ap-northeast-1", None)
            else:
                recorder.record("KR", latency, second, 503 if i == 0 else 200, "ap-northeast-2", None)
    meta = {"target": "http://127.0.0.1:1", "mode": "open", "workers": 1, "elapsed_s": 20.0}
    return build_report(recorder, meta, report_events(events, origin_ts=ORIGIN))


KILL = WorldEvent(
    ts=ORIGIN + 8.25, source="chaos", kind="kill", target="edge-node ap-northeast-2-a", message="SIGKILL"
)
EXIT = WorldEvent(
    ts=ORIGIN + 8.3,
    source="supervisor",
    kind="exit",
    target="edge-node ap-northeast-2-a",
    message="status -9",
)
RESTART = WorldEvent(
    ts=ORIGIN + 13.5,
    source="supervisor",
    kind="restart",
    target="edge-node ap-northeast-2-a",
    message="again",
)


def test_every_time_chart_marks_every_event() -> None:
    report = _failover_report([KILL, EXIT, RESTART])
    page = _Svg()
    page.feed(render_html(report))
    embedded = json.loads(page.data)
    assert [(e["t_s"], e["kind"]) for e in embedded["events"]] == [
        (8.25, "kill"),
        (8.3, "exit"),
        (13.5, "restart"),
    ]
    plot_w = WIDTH - LEFT - RIGHT
    for chart in TIME_CHARTS:
        (svg,) = [e for e in page.find("svg") if e["attrs"]["id"] == chart]
        markers = json.loads(svg["attrs"]["data-events"])
        assert [(m["t_s"], m["source"], m["label"]) for m in markers] == [
            (8.25, "chaos", "kill edge-node ap-northeast-2-a"),
            (8.3, "supervisor", "exit edge-node ap-northeast-2-a"),
            (13.5, "supervisor", "restart edge-node ap-northeast-2-a"),
        ]
        groups = page.find("g", svg=chart, cls="event")
        assert [(g["attrs"]["data-source"], float(g["attrs"]["data-t"])) for g in groups] == [
            ("chaos", 8.25),
            ("supervisor", 8.3),
            ("supervisor", 13.5),
        ]
        assert [g["attrs"]["class"] for g in groups] == [
            "event event-chaos",
            "event event-supervisor",
            "event event-supervisor",
        ]
        lines = page.find("line", svg=chart, cls="marker")
        assert len(lines) == 3
        for line, t in zip(lines, (8.25, 8.3, 13.5), strict=True):
            assert float(line["attrs"]["x1"]) == line_x(t, plot_w)
            assert line["attrs"]["x1"] == line["attrs"]["x2"]  # vertical
        styles = {line["attrs"]["stroke-dasharray"] for line in lines}
        assert len(styles) == 2  # faults and the supervisor look different
        labels = [t["text"] for t in page.find("text", svg=chart, cls="event-label")]
        assert labels == [
            "kill edge-node ap-northeast-2-a",
            "exit edge-node ap-northeast-2-a",
            "restart edge-node ap-northeast-2-a",
        ]
    rows = [r for r in page.find("tr") if r["table"] == "events" and "data-source" in r["attrs"]]
    assert [r["attrs"]["data-source"] for r in rows] == ["chaos", "supervisor", "supervisor"]
    assert "kill" in rows[0]["text"]
    assert "SIGKILL" in rows[0]["text"]
    assert "8.2" in rows[0]["text"]


def line_x(t: float, plot_w: int) -> float:
    return round(LEFT + t / 20.0 * plot_w, 1)


def test_crowded_events_keep_every_line_but_not_every_label() -> None:
    crowd = [
        WorldEvent(
            ts=ORIGIN + 5 + i * 0.2,
            source="chaos",
            kind="freeze",
            target=f"edge-node region-{i}-a",
            message="",
        )
        for i in range(10)
    ]
    page = _Svg()
    page.feed(render_html(_failover_report(crowd)))
    assert len(page.find("g", svg="chart-rate", cls="event")) == 10
    labels = page.find("text", svg="chart-rate", cls="event-label")
    assert 0 < len(labels) < 10
    assert len({label["attrs"]["y"] for label in labels}) > 1  # stacked in rows, not on top of each other


def test_no_events_means_no_markers_and_says_so() -> None:
    report = _failover_report([])
    report["meta"]["events_file"] = ".edgecdn/chaos-events.jsonl"
    html = render_html(report)
    page = _Svg()
    page.feed(html)
    assert report["events"] == []
    for chart in TIME_CHARTS:
        assert page.find("g", svg=chart, cls="event") == []
    assert "No events in .edgecdn/chaos-events.jsonl during the run." in html


def test_region_table_and_answers_by_region_over_time() -> None:
    report = _failover_report([KILL])
    page = _Svg()
    page.feed(render_html(report))
    rows = {
        r["attrs"]["data-region-row"]: r["text"] for r in page.find("tr") if "data-region-row" in r["attrs"]
    }
    assert list(rows) == ["ap-northeast-1", "ap-northeast-2", "eu-central-1", "no answer"]
    regions = report["regions"]
    assert {r: (v["requests"], v["errors"]) for r, v in regions.items()} == {
        "ap-northeast-1": (295, 0),
        "ap-northeast-2": (700, 14),
        "eu-central-1": (1000, 0),
    }
    assert regions["eu-central-1"]["share"] == round(1000 / 1995, 6)
    assert sum(r["share"] for r in regions.values()) == 1.0
    assert "1,000" in rows["eu-central-1"]
    assert "50.1%" in rows["eu-central-1"]
    assert "5" in rows["no answer"]
    (svg,) = [e for e in page.find("svg") if e["attrs"]["id"] == "chart-regions"]
    series = json.loads(svg["attrs"]["data-series"])
    assert set(series) == {"ap-northeast-1", "ap-northeast-2", "eu-central-1", "no answer"}
    by_second = {name: dict(map(tuple, points)) for name, points in series.items()}
    assert by_second["ap-northeast-2"][7] == 50
    assert by_second["ap-northeast-2"][9] == 0  # the failover...
    assert by_second["ap-northeast-1"][9] == 50  # ...to the next region
    assert by_second["ap-northeast-2"][14] == 50  # and back
    assert by_second["no answer"][8] == 5
    for region, values in regions.items():
        assert sum(by_second[region].values()) == values["requests"]
    assert [t["regions"] for t in report["timeline"]][9] == {"ap-northeast-1": 50, "eu-central-1": 50}
    assert len(page.find("polyline", svg="chart-regions", cls="series")) == 4
