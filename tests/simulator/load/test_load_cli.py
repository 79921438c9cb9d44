"""``edgecdn load`` through its real entry point: reports, HTML, workers, bad input, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from geo.world import World
from simulator.cli import main
from simulator.load.recorder import decode_histogram
from tests.conftest import REPO_ROOT
from tests.simulator.load.conftest import WORLD_FILE, Server


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["load", "--world", str(WORLD_FILE), *argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def reports(echo_server: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    """One run from three countries through a router-like endpoint; its JSON and HTML."""
    tmp = tmp_path_factory.mktemp("reports")
    argv = [
        "--target", echo_server.url, "--path", "/route", "--mix", "KR=10,US=40,DE=50", "--rate", "400",
        "--duration", "2s", "--out", str(tmp / "r.json"), "--html", str(tmp / "r.html"),
    ]  # fmt: skip
    assert main(["load", "--world", str(WORLD_FILE), *argv]) == 0
    return json.loads((tmp / "r.json").read_text()), (tmp / "r.html").read_text(), str(tmp)


def _block(world: World, code: str) -> str:
    return "region-" + str(world.country(code).loopback.network_address).split(".")[1]


def test_report_json_schema(reports: tuple[dict[str, Any], str, str], world: World) -> None:
    report = reports[0]
    assert report["schema"] == "edgecdn-load-report/1"
    assert set(report) >= {"meta", "totals", "countries", "regions", "matrix", "timeline"}
    assert report["meta"]["mode"] == "open"
    assert report["meta"]["interrupted"] is False
    assert report["totals"]["requests"] == 800
    assert report["totals"]["achieved_rps"] == pytest.approx(400, rel=0.01)
    assert set(report["totals"]["send_lag_ms"]) >= {"p50", "p99", "max"}
    assert {cc: c["requests"] for cc, c in report["countries"].items()} == {"KR": 80, "US": 320, "DE": 400}
    for code, country in report["countries"].items():
        assert country["errors"] == 0
        assert set(country["latency_ms"]) >= {"p50", "p90", "p99", "max"}
        lat = country["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert country["served_by"] == {_block(world, code): 1.0}
        histogram = decode_histogram(country["histogram"]["data"])
        assert histogram.get_total_count() == country["requests"]
        assert histogram.get_value_at_percentile(50) / 1000 == pytest.approx(lat["p50"], abs=0.001)
        assert report["matrix"][code] == {_block(world, code): country["requests"]}
    assert sum(r["requests"] for r in report["regions"].values()) == 800
    assert sum(t["requests"] for t in report["timeline"]) == 800


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.svgs: dict[str, dict[str, str]] = {}
        self.cells: list[dict[str, str]] = []
        self.external: list[str] = []
        self.data = ""
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self.svgs[values["id"]] = values
        if tag == "td" and "data-region" in values:
            self.cells.append(values)
        for key in ("src", "href"):
            if key in values:
                self.external.append(values[key])
        self._in_data = tag == "script" and values.get("id") == "edgecdn-load-data"

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_data = False


def test_html_report_renders_with_the_charts_data(
    reports: tuple[dict[str, Any], str, str], world: World
) -> None:
    report, html, _ = reports
    page = _Page()
    page.feed(html)
    assert page.external == []  # self-contained: nothing to fetch
    assert set(page.svgs) == {"chart-percentiles", "chart-rate", "chart-p99", "chart-regions"}
    percentiles = json.loads(page.svgs["chart-percentiles"]["data-series"])
    assert set(percentiles) == {"KR", "US", "DE"}
    for code, values in percentiles.items():
        assert values["p99"] == report["countries"][code]["latency_ms"]["p99"]
    rate = json.loads(page.svgs["chart-rate"]["data-series"])
    assert sum(y for _, y in rate) == 800
    p99 = json.loads(page.svgs["chart-p99"]["data-series"])
    assert [x for x, _ in p99] == [t["second"] for t in report["timeline"]]
    shares = {(c["data-country"], c["data-region"]): float(c["data-share"]) for c in page.cells}
    for code in ("KR", "US", "DE"):
        assert shares[(code, _block(world, code))] == 1.0
    embedded = json.loads(page.data)
    assert embedded["countries"]["KR"]["requests"] == 80
    assert "histogram" not in embedded["countries"]["KR"]


def test_tables_are_printed(echo_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "--target", echo_server.url, "--countries", "KR,JP", "--rate", "100", "--duration", "1s"
    )
    assert code == 0
    assert "KR" in out
    assert "JP" in out
    assert "test-region 100%" in out
    assert "p99 ms" in out


def test_post_with_a_body_and_a_check(echo_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    argv = ["--target", echo_server.url, "--countries", "KR", "--rate", "50", "--duration", "1s",
            "--method", "post", "--body", "hello", "--header", "X-Test: 1", "--expect-body", "ok",
            "--out", str(out)]  # fmt: skip
    assert main(["load", "--world", str(WORLD_FILE), *argv]) == 0
    report = json.loads(out.read_text())
    assert report["meta"]["request"]["method"] == "POST"
    assert report["totals"]["requests"] == 50
    assert report["totals"]["errors"] == 0


def test_workers_merge_into_one_report(echo_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    argv = [
        "--target",
        echo_server.url,
        "--mix",
        "KR=1,DE=3",
        "--rate",
        "400",
        "--duration",
        "2s",
        "--workers",
        "2",
    ]
    assert main(["load", "--world", str(WORLD_FILE), *argv, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["meta"]["workers"] == 2
    assert report["totals"]["requests"] == 800
    assert {cc: c["requests"] for cc, c in report["countries"].items()} == {"KR": 200, "DE": 600}
    total = decode_histogram(report["totals"]["histogram"]["data"])
    assert total.get_total_count() == 800


def test_closed_loop_from_the_cli(echo_server: Server, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    argv = ["--target", echo_server.url, "--countries", "KR,US", "--concurrency", "4", "--duration", "1s"]
    assert main(["load", "--world", str(WORLD_FILE), *argv, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["meta"]["mode"] == "closed"
    assert report["totals"]["requests"] > 50
    assert report["totals"]["errors"] == 0


def test_scenario_from_the_cli(echo_server: Server, tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[scenario]\nmix = "KR=1"\n'
        '[[phase]]\nkind = "ramp"\nduration = "1s"\nfrom_rate = 0\nto_rate = 200\n'
        '[[phase]]\nkind = "spike"\nduration = "1s"\nrate = 300\nmix = "JP=1"\n'
    )
    out = tmp_path / "r.json"
    assert main(["load", "--world", str(WORLD_FILE), "--target", echo_server.url, "--scenario", str(scenario),
                 "--out", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert {cc: c["requests"] for cc, c in report["countries"].items()} == {"KR": 100, "JP": 300}
    assert [p["kind"] for p in report["meta"]["phases"]] == ["ramp", "spike"]


def _refused_url() -> tuple[socket.socket, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--countries", "KR,XX"], "edgecdn load: countries: unknown XX; the world"),
        (["--mix", "KR=ten"], "edgecdn load: --mix: 'ten' is not a number"),
        (["--rate", "-3"], "argument --rate: must be a positive number (got -3)"),
        (["--rate", "fast"], "argument --rate: 'fast' is not a number"),
        (
            ["--rate", "10", "--concurrency", "2"],
            "give --rate (open loop) or --concurrency (closed loop), not both",
        ),
        (["--duration", "forever"], "edgecdn load: --duration: 'forever' is not a duration"),
        (["--header", "nocolon"], "edgecdn load: --header: 'nocolon' is not 'Name: value'"),
        (["--scenario", "/no/such.toml"], "edgecdn load: scenario /no/such.toml: No such file"),
        (["--target", "https://example.com"], "only http:// targets are supported"),
        (["--countries", "KR,JP", "--concurrency", "2", "--workers", "2"], "too few for 2 workers"),
        (["--scenario", "x.toml", "--rate", "5"], "the scenario sets the traffic; drop --rate"),
        (["--body", "@/no/such/file"], "edgecdn load: --body: cannot read /no/such/file"),
    ],
)
def test_bad_input_gets_a_clear_message(
    echo_server: Server, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    full = argv if "--target" in argv else ["--target", echo_server.url, *argv]
    code, _, err = run_cli(capsys, *full)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_unreachable_target(capsys: pytest.CaptureFixture[str]) -> None:
    sock, url = _refused_url()
    with sock:
        code, _, err = run_cli(capsys, "--target", url, "--countries", "KR")
    assert code == 2
    assert err.strip() == f"edgecdn load: target {url} is unreachable: Connection refused"


def test_without_target_or_router(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGECDN_STATE_DIR", str(tmp_path))
    code, _, err = run_cli(capsys, "--countries", "KR")
    assert code == 2
    assert "no running world" in err
    assert "pass --target URL" in err
    state = {"world_file": "w", "supervisor_pid": 1, "control_plane": {"address": "127.0.0.1:1"}}
    (tmp_path / "world.json").write_text(json.dumps(state))
    code, _, err = run_cli(capsys, "--countries", "KR")
    assert "the running world has no router yet; pass --target URL" in err


def test_router_of_the_running_world_is_the_default_target(
    echo_server: Server, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGECDN_STATE_DIR", str(tmp_path))
    state = {
        "world_file": "w",
        "supervisor_pid": 1,
        "control_plane": {"address": "x"},
        "router": {"url": echo_server.url},
    }
    (tmp_path / "world.json").write_text(json.dumps(state))
    code, out, _ = run_cli(capsys, "--countries", "KR", "--rate", "50", "--duration", "1s")
    assert code == 0
    assert echo_server.url in out


def _wait_for_answers(echo_server: Server, run: str, at_least: int) -> None:
    """Until the echo server has answered ``at_least`` requests of this run (not a fixed sleep:
    on a loaded machine the generator's start-up alone can take seconds)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{echo_server.url}/answered/{run}", timeout=5) as answer:
            if int(answer.read()) >= at_least:
                return
        time.sleep(0.05)
    raise AssertionError(f"the load generator never sent {at_least} requests")


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_still_writes_the_report(echo_server: Server, tmp_path: Path, workers: int) -> None:
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    run = f"ctrl-c-{workers}"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "load", "--world", str(WORLD_FILE), "--target", echo_server.url,
         "--path", f"/count/{run}", "--countries", "KR,DE", "--rate", "200", "--duration", "60s",
         "--workers", str(workers), "--out", str(out), "--html", str(html)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for_answers(echo_server, run, at_least=150)
        os.kill(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(out.read_text())
    assert report["meta"]["interrupted"] is True
    assert report["totals"]["requests"] >= 150
    assert report["meta"]["elapsed_s"] < 10
    assert html.exists()
    assert "KR" in stdout


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.parametrize("after_s", [0.0, 0.1, 0.3, 0.6])
def test_ctrl_c_while_workers_start_ends_cleanly(echo_server: Server, after_s: float) -> None:
    """A terminal's Ctrl-C reaches the whole process group, workers that are still importing
    included; none may die with a KeyboardInterrupt traceback (one in four did)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "load", "--world", str(WORLD_FILE), "--target", echo_server.url,
         "--countries", "KR", "--rate", "50", "--duration", "30s", "--workers", "2"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while len(_children(process.pid)) < 2:  # the workers exist: they are importing now
            assert time.monotonic() < deadline, "no workers started"
            time.sleep(0.005)
        time.sleep(after_s)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
