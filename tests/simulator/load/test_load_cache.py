"""Answers by HTTP cache outcome (``x-cache``): per country and region, merged across
workers, and shown as a hit ratio in the JSON report, the terminal and the page."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from geo.world import World
from simulator.cli import main
from simulator.load.cache import figures, hit_ratio
from simulator.load.headers import CACHE_RESULTS, cache_result
from simulator.load.html import render_html
from simulator.load.recorder import Recorder
from simulator.load.report import build_report, print_tables
from tests.simulator.load.conftest import WORLD_FILE, Server
from tests.simulator.load.test_load_versions import _block


def test_the_header_is_read_whatever_its_case() -> None:
    assert cache_result(b"http/1.1 200 ok\r\nx-cache: hit\r\nx-edge-app: a@1") == "HIT"
    assert cache_result(b"http/1.1 200 ok\r\nx-cache:  revalidated ") == "REVALIDATED"
    assert cache_result(b"http/1.1 200 ok\r\nx-cache: weird") == "OTHER"
    assert cache_result(b"http/1.1 200 ok\r\nx-cache-status: hit") == ""  # another header
    assert cache_result(b"http/1.1 200 ok\r\ncontent-length: 2") == ""


def _recorder() -> Recorder:
    recorder = Recorder()
    for result in ("HIT", "HIT", "REVALIDATED", "MISS", "STALE", "BYPASS"):
        recorder.record("DE", 1000, 0, 200, "eu", None, "", result)
    recorder.record("DE", 1000, 0, 200, "eu", None, "", "")  # never touched the cache
    recorder.record("FR", 1000, 0, 200, "eu", None, "", "")
    recorder.record("FR", 1000, 0, 0, "", "timeout", "", "")
    return recorder


def test_counts_per_country_and_region_merge_exactly() -> None:
    merged = Recorder()
    merged.merge(_recorder().to_wire())
    merged.merge(_recorder().to_wire())
    report = build_report(merged, {"target": "t", "elapsed_s": 1.0})
    de = report["countries"]["DE"]
    assert de["cache"] == {"HIT": 4, "MISS": 2, "STALE": 2, "REVALIDATED": 2, "BYPASS": 2}
    assert de["hit_ratio"] == 0.6  # (4 + 2) / (4 + 2 + 2 + 2)
    assert de["cache_shares"]["HIT"] == round(4 / 12, 6)
    assert report["countries"]["FR"] == report["countries"]["FR"] | {"cache": {}, "hit_ratio": None}
    assert report["regions"]["eu"]["cache"] == de["cache"]
    assert report["totals"]["hit_ratio"] == 0.6
    assert report["countries"]["DE"]["versions"] == {"-": 14}  # the existing keys stay


def test_wire_forms_without_cache_still_merge() -> None:
    wire = _recorder().to_wire()
    del wire["region_cache"]
    for country in wire["countries"].values():
        del country["cache"]
    assert Recorder.from_wire(wire).countries["DE"].cache == {}


@given(st.dictionaries(st.sampled_from(CACHE_RESULTS), st.integers(0, 1000)))
def test_shares_add_up_and_the_ratio_is_a_share(counts: dict[str, int]) -> None:
    result = figures(counts)
    assert sum(result["cache"].values()) == sum(counts.values())
    if result["cache"]:
        assert abs(sum(result["cache_shares"].values()) - 1) < 1e-5
    ratio = hit_ratio(counts)
    assert (ratio is None) == (sum(n for k, n in counts.items() if k != "BYPASS") == 0)
    assert ratio is None or 0 <= ratio <= 1


def test_nothing_is_shown_without_the_header() -> None:
    recorder = Recorder()
    recorder.record("DE", 1000, 0, 200, "eu", None, "", "")
    report = build_report(recorder, {"target": "t", "elapsed_s": 1.0})
    console = Console(width=100, record=True)
    print_tables(report, console)
    assert "x-cache" not in console.export_text()
    assert 'id="cache"' not in render_html(report)


@pytest.mark.parametrize("workers", [1, 2])
def test_hit_ratio_through_the_cli(
    echo_server: Server, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: int
) -> None:
    """JP's answers cycle HIT, HIT, REVALIDATED, MISS, STALE; KR's bypass; DE's have no x-cache."""
    kr, jp, de = (_block(world, code) for code in ("KR", "JP", "DE"))
    path = f"/cache/{uuid.uuid4().hex}?bypass={kr}&none={de}"
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    argv = ["load", "--world", str(WORLD_FILE), "--target", echo_server.url, "--path", path,
            "--countries", "KR,JP,DE", "--rate", "300", "--duration", "3s", "--workers", str(workers),
            "--out", str(out), "--html", str(html)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    countries = report["countries"]
    assert countries["JP"]["cache"] == {"HIT": 120, "MISS": 60, "STALE": 60, "REVALIDATED": 60}
    assert countries["JP"]["hit_ratio"] == 0.6
    assert (countries["KR"]["cache"], countries["KR"]["hit_ratio"]) == ({"BYPASS": 300}, None)
    assert (countries["DE"]["cache"], countries["DE"]["hit_ratio"]) == ({}, None)
    assert report["regions"][f"region-{jp}"]["hit_ratio"] == 0.6
    assert report["totals"]["cache"]["BYPASS"] == 300
    text = capsys.readouterr().out
    assert "REVALIDATED" in text  # the note says how the ratio counts it
    jp_line = next(line for line in text.splitlines() if line.strip().startswith("JP") and "60.0%" in line)
    assert "HIT 40%" in jp_line
    page = html.read_text()
    assert '<table id="cache">' in page
    assert "cache hit ratio 60.0%" in page
    assert (
        json.loads(page.split('id="edgecdn-load-data">')[1].split("</script>")[0])["totals"]["hit_ratio"]
        == 0.6
    )
