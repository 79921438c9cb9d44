"""Answers by app version (``x-edge-app``): per country, per region, per second; merged across
workers; in the JSON report, the tables and the HTML page's chart of version share over time."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from geo.world import World
from runtime.events import WorldEvent
from simulator.cli import main
from simulator.load.charts import LEFT, RIGHT, WIDTH
from simulator.load.events import report_events
from simulator.load.headers import AppVersions, app_version
from simulator.load.html import render_html
from simulator.load.recorder import Recorder
from simulator.load.report import build_report, print_tables
from simulator.load.versions import colors, summary, version_key
from tests.simulator.load.conftest import WORLD_FILE, Server
from tests.simulator.load.test_load_html import _Svg

OLD, NEW, BROKEN = "geo-hello@1.0.0", "geo-hello@1.1.0", "geo-hello@1.2.0"
ORIGIN = 1_700_000_000.0
SEOUL, TOKYO, VIRGINIA = "ap-northeast-2", "ap-northeast-1", "us-east-1"


def test_the_header_is_read_and_interned() -> None:
    versions = AppVersions()
    first = b"HTTP/1.1 200 OK\r\nX-Edge-App:  Geo-Hello@1.1.0 \r\ncontent-length: 0"
    second = b"HTTP/1.1 200 OK\r\nx-edge-app: Geo-Hello@1.1.0\r\n"
    one, two = app_version(first.lower(), first, versions), app_version(second.lower(), second, versions)
    assert one == two == "Geo-Hello@1.1.0"  # the case as sent
    assert one is two
    assert app_version(first.lower(), first, versions) is one
    last = b"HTTP/1.1 200 OK\r\nx-edge-app: geo-hello@1.0.0"  # the head's last line
    assert app_version(last, last, versions) == OLD
    assert app_version(b"http/1.1 200 ok\r\nx-edge-region: r", b"", versions) == ""


def test_a_server_inventing_versions_cannot_grow_the_report_without_bound() -> None:
    versions = AppVersions(limit=3)
    names = [versions.name(f" app@{i}.0.0".encode()) for i in range(5)]
    assert names == ["app@0.0.0", "app@1.0.0", "app@2.0.0", "other", "other"]
    assert versions.name(b" app@1.0.0") == "app@1.0.0"  # the known ones are still told apart


def test_versions_sort_by_number_with_the_buckets_last() -> None:
    names = ["-", "other", "geo-hello@1.10.0", "geo-hello@1.9.0", "geo-hello@1.9.0-rc.1", "api@2.0.0"]
    assert sorted(names, key=version_key) == [
        "api@2.0.0",
        "geo-hello@1.9.0",
        "geo-hello@1.9.0-rc.1",
        "geo-hello@1.10.0",
        "-",
        "other",
    ]
    palette = colors(["-", NEW, OLD])
    assert list(palette) == [OLD, NEW, "-"]
    assert len(set(palette.values())) == 3
    assert summary({OLD: 0.996, NEW: 0.004}) == f"{OLD} >99%, {NEW} <1%"


def _rollout(recorder: Recorder | list[Recorder]) -> None:
    """30 s from KR (Seoul), JP (Tokyo) and US (Virginia, older nodes: no header): Seoul
    answers with 1.1.0 from second 10 and is rolled back at second 20; a few KR requests
    get no answer at all at second 15."""
    parts = recorder if isinstance(recorder, list) else [recorder]
    rng = random.Random(7)
    n = 0
    for second in range(30):
        for i in range(20):
            for country, region, usual in (("KR", SEOUL, OLD), ("JP", TOKYO, OLD), ("US", VIRGINIA, "")):
                part = parts[n % len(parts)]
                n += 1
                version = NEW if country == "KR" and 10 <= second < 20 else usual
                if country == "KR" and second == 15 and i < 4:
                    part.record(country, 2_000, second, 0, "", "connect", "")
                    continue
                part.record(country, int(rng.lognormvariate(8, 0.4)), second, 200, region, None, version)


def test_answers_are_counted_by_version_per_country_region_and_second() -> None:
    recorder = Recorder()
    _rollout(recorder)
    assert dict(recorder.countries["KR"].versions) == {OLD: 400, NEW: 196}
    assert dict(recorder.countries["US"].versions) == {"-": 600}
    assert {r: dict(c) for r, c in recorder.region_versions().items()} == {
        SEOUL: {OLD: 400, NEW: 196},
        TOKYO: {OLD: 600},
        VIRGINIA: {"-": 600},
    }
    assert {r: dict(c) for r, c in recorder.timeline[9].versions.items()} == {
        SEOUL: {OLD: 20},
        TOKYO: {OLD: 20},
        VIRGINIA: {"-": 20},
    }
    assert dict(recorder.timeline[15].versions[SEOUL]) == {NEW: 16}  # no answer, no version
    assert dict(recorder.timeline[20].versions[SEOUL]) == {OLD: 20}  # rolled back


def test_two_workers_merge_into_the_counts_of_one() -> None:
    whole, parts = Recorder(), [Recorder(), Recorder()]
    _rollout(whole)
    _rollout(parts)
    merged = Recorder()
    for part in parts:
        merged.merge(json.loads(json.dumps(part.to_wire())))  # as it crosses the process boundary
    assert {c: dict(s.versions) for c, s in merged.countries.items()} == {
        c: dict(s.versions) for c, s in whole.countries.items()
    }
    assert {s: {r: dict(v) for r, v in t.versions.items()} for s, t in merged.timeline.items()} == {
        s: {r: dict(v) for r, v in t.versions.items()} for s, t in whole.timeline.items()
    }
    assert all(sum(c.values()) < 600 for c in parts[0].region_versions().values())  # each had a part


def test_wire_forms_of_older_workers_still_merge() -> None:
    old = Recorder()
    old.record("KR", 1_000, 0, 200, SEOUL, None)
    wire = old.to_wire()
    for country in wire["countries"].values():
        del country["versions"]
    for tick in wire["timeline"].values():
        del tick["versions"]
    merged = Recorder.from_wire(wire)
    assert merged.total_requests() == 1
    assert not merged.countries["KR"].versions


def _report(events: list[WorldEvent] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    recorder = Recorder()
    recorder.started_ts = ORIGIN
    _rollout(recorder)
    meta = {"target": "http://127.0.0.1:1", "mode": "open", "workers": 1, "elapsed_s": 30.0}
    return build_report(recorder, meta, report_events(events, origin_ts=ORIGIN))


def test_report_keys() -> None:
    report = _report()
    kr = report["countries"]["KR"]
    assert kr["versions"] == {OLD: 400, NEW: 196}
    assert kr["version_shares"] == {OLD: round(400 / 596, 6), NEW: round(196 / 596, 6)}
    assert report["countries"]["US"]["versions"] == {"-": 600}
    assert report["regions"][SEOUL]["versions"] == {OLD: 400, NEW: 196}
    assert report["regions"][VIRGINIA]["version_shares"] == {"-": 1.0}
    assert report["totals"]["versions"] == {OLD: 1000, NEW: 196, "-": 600}
    assert report["totals"]["requests"] == 1800  # 4 of them unanswered: in no version
    assert report["timeline"][12]["versions"] == {SEOUL: {NEW: 20}, TOKYO: {OLD: 20}, VIRGINIA: {"-": 20}}
    for tick in report["timeline"]:
        assert {r: sum(v.values()) for r, v in tick["versions"].items()} == tick["regions"]


def test_the_terminal_shows_the_share_by_version() -> None:
    console = Console(width=80, record=True)
    print_tables(_report(), console)
    text = console.export_text()
    assert "answers by app version" in text
    kr = next(line for line in text.splitlines() if line.strip().startswith("KR ") and "geo-hello" in line)
    assert f"{OLD} 67%, {NEW} 33%" in kr
    assert max(len(line) for line in text.splitlines()) <= 80


KILL = WorldEvent(ts=ORIGIN + 10.2, source="chaos", kind="kill", target="edge-node a", message="SIGKILL")
RESTART = WorldEvent(ts=ORIGIN + 20.5, source="supervisor", kind="restart", target="edge-node a", message="")


def test_the_chart_of_version_share_over_time() -> None:
    report = _report([KILL, RESTART])
    page = _Svg()
    page.feed(render_html(report))
    embedded = json.loads(page.data)
    assert embedded["timeline"][12]["versions"][SEOUL] == {NEW: 20}
    assert embedded["regions"][SEOUL]["versions"] == {OLD: 400, NEW: 196}
    (svg,) = [e for e in page.find("svg") if e["attrs"]["id"] == "chart-versions"]
    series = json.loads(svg["attrs"]["data-series"])
    assert set(series) == {SEOUL, TOKYO, VIRGINIA}
    assert {s for s, _ in series[SEOUL][NEW]} == set(range(10, 20))
    assert {s for s, _ in series[SEOUL][OLD]} == set(range(10)) | set(range(20, 30))
    assert sum(n for _, n in series[SEOUL][NEW]) == 196
    assert series[VIRGINIA] == {"-": [[s, 20] for s in range(30)]}
    lanes = [g["attrs"]["data-region"] for g in page.find("g", svg="chart-versions", cls="lane")]
    assert lanes == [TOKYO, SEOUL, VIRGINIA]  # as the region table
    paths = {
        (p["attrs"]["data-region"], p["attrs"]["data-version"]): p
        for p in page.find("path", svg="chart-versions", cls="share")
    }
    assert set(paths) == {(SEOUL, OLD), (SEOUL, NEW), (TOKYO, OLD), (VIRGINIA, "-")}
    assert paths[(SEOUL, OLD)]["attrs"]["fill"] == paths[(TOKYO, OLD)]["attrs"]["fill"]
    assert paths[(SEOUL, OLD)]["attrs"]["fill"] != paths[(SEOUL, NEW)]["attrs"]["fill"]
    new_xs = {x for x, _ in _vertices(paths[(SEOUL, NEW)]["attrs"]["d"])}
    assert (min(new_xs), max(new_xs)) == (line_x(10, 30), line_x(20, 30))  # the rollout, the rollback
    assert paths[(SEOUL, OLD)]["attrs"]["d"].count("M") == 2  # before the rollout, after the rollback
    assert len(_vertices(paths[(TOKYO, OLD)]["attrs"]["d"])) == 4  # 100% all along: a rectangle
    captions = [t["text"] for t in page.find("text", svg="chart-versions", cls="lane-caption")]
    assert captions[1] == f"{SEOUL}: 596 answers, {OLD} 67%, {NEW} 33%"
    # the world's events across every lane, as on the other time charts
    assert [(m["t_s"], m["kind"]) for m in json.loads(svg["attrs"]["data-events"])] == [
        (10.2, "kill"),
        (20.5, "restart"),
    ]
    assert [g["attrs"]["data-kind"] for g in page.find("g", svg="chart-versions", cls="event")] == [
        "kill",
        "restart",
    ]
    markers = page.find("line", svg="chart-versions", cls="marker")
    (rate_marker, _) = page.find("line", svg="chart-rate", cls="marker")
    assert markers[0]["attrs"]["x1"] == rate_marker["attrs"]["x1"]  # the same time axis
    assert float(markers[0]["attrs"]["y2"]) > max(
        float(r["attrs"]["y"])
        for r in page.find("rect", svg="chart-versions")
        if r["attrs"].get("height") == "44"
    )  # down through the last lane


def _vertices(d: str) -> list[tuple[float, float]]:
    points = d.replace("M", " ").replace("L", " ").replace("Z", " ").split()
    return [(float(x), float(y)) for x, y in (p.split(",") for p in points)]


def line_x(t: float, x_end: float) -> float:
    return round(LEFT + t / x_end * (WIDTH - LEFT - RIGHT), 1)


def test_the_tables_show_the_share_by_version() -> None:
    page = _Svg()
    page.feed(render_html(_report()))
    cells: dict[str, list[dict[str, Any]]] = {}
    for cell in page.find("td", cls="versions"):
        cells.setdefault(cell["table"], []).append(cell)
    assert set(cells) == {"regions", "countries"}
    by_region = {json.dumps(c["attrs"].get("data-versions")) for c in cells["regions"]}
    assert json.dumps(json.dumps({OLD: 400, NEW: 196})) in by_region
    kr = next(r for r in page.find("tr") if r["attrs"].get("data-country-row") == "KR")
    assert f"{OLD} 67%" in kr["text"]
    assert f"{NEW} 33%" in kr["text"]


def test_without_any_header_there_is_no_chart_but_a_note() -> None:
    recorder = Recorder()
    recorder.record("KR", 1_000, 0, 200, SEOUL, None, "")
    report = build_report(recorder, {"target": "t", "elapsed_s": 1.0})
    assert report["totals"]["versions"] == {"-": 1}
    html = render_html(report)
    page = _Svg()
    page.feed(html)
    assert "chart-versions" not in {e["attrs"]["id"] for e in page.find("svg")}
    assert 'id="no-versions"' in html
    assert page.find("td", cls="versions") == []
    console = Console(width=80, record=True)
    print_tables(report, console)
    assert "app version" not in console.export_text()


def _block(world: World, code: str) -> str:
    return str(world.country(code).loopback.network_address).split(".")[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_rollout_and_its_rollback_through_the_cli(
    echo_server: Server, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: int
) -> None:
    """KR's region answers its requests 100 to 199 with 1.1.0; DE's region sends no header."""
    kr, jp, de = (_block(world, code) for code in ("KR", "JP", "DE"))
    path = f"/app/{uuid.uuid4().hex}?canary={kr}&from=100&to=200&bare={de}"
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    argv = ["load", "--world", str(WORLD_FILE), "--target", echo_server.url, "--path", path,
            "--countries", "KR,JP,DE", "--rate", "300", "--duration", "3s", "--workers", str(workers),
            "--out", str(out), "--html", str(html)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    seoul, tokyo, frankfurt = f"region-{kr}", f"region-{jp}", f"region-{de}"
    assert {c: v["versions"] for c, v in report["countries"].items()} == {
        "KR": {OLD: 200, NEW: 100},
        "JP": {OLD: 300},
        "DE": {"-": 300},
    }
    assert {r: v["versions"] for r, v in report["regions"].items()} == {
        seoul: {OLD: 200, NEW: 100},
        tokyo: {OLD: 300},
        frankfurt: {"-": 300},
    }
    assert report["totals"]["versions"] == {OLD: 500, NEW: 100, "-": 300}
    per_second: dict[str, dict[str, int]] = {}
    for tick in report["timeline"]:
        assert {r: sum(v.values()) for r, v in tick["versions"].items()} == tick["regions"]
        for region, counts in tick["versions"].items():
            for version, n in counts.items():
                key = f"{region} {version}"
                per_second[key] = per_second.get(key, {}) | {tick["second"]: n}
    assert sum(per_second[f"{seoul} {NEW}"].values()) == 100
    assert set(per_second[f"{tokyo} {OLD}"]) >= {0, 1, 2}
    if workers == 1:  # one clock: the canary's answers are the run's second second
        shares = [t["versions"][seoul].get(NEW, 0) / t["regions"][seoul] for t in report["timeline"][:3]]
        assert shares[0] < 0.1 < 0.9 < shares[1]
        assert shares[2] < 0.1
    page = _Svg()
    page.feed(html.read_text())
    (svg,) = [e for e in page.find("svg") if e["attrs"]["id"] == "chart-versions"]
    series = json.loads(svg["attrs"]["data-series"])
    assert sum(n for _, n in series[seoul][NEW]) == 100
    assert series[frankfurt].keys() == {"-"}
    assert json.loads(page.data)["totals"]["versions"] == report["totals"]["versions"]
    assert f"{OLD} 67%, {NEW} 33%" in capsys.readouterr().out
