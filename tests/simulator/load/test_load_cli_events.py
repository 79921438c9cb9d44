"""``edgecdn load`` against a real server while the world's events file is being written."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from runtime.events import record_event
from simulator.cli import main
from tests.simulator.load.conftest import WORLD_FILE, Server
from tests.simulator.load.test_load_html import _Svg


def _write_during_the_run(path: Path, stop: threading.Event) -> None:
    """A kill 1.2 s in and its restart 2 s in, as `edgecdn chaos` and the supervisor would."""
    if stop.wait(1.2):
        return
    record_event(path, source="chaos", kind="kill", target="edge-node ap-northeast-2-a", message="SIGKILL")
    if stop.wait(0.8):
        return
    record_event(
        path, source="supervisor", kind="restart", target="edge-node ap-northeast-2-a", message="again"
    )
    with path.open("a") as file:
        file.write('{"ts": 1, "source": "chaos", "kind": "cut sh')  # a writer that crashed mid-line


def test_events_during_the_run_reach_the_reports(
    echo_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGECDN_STATE_DIR", str(tmp_path))  # the default events file lives here
    events = tmp_path / "chaos-events.jsonl"
    now = time.time()
    record_event(events, source="chaos", kind="partition", target="before", message="", now=now - 60)
    record_event(events, source="chaos", kind="heal", target="after", message="", now=now + 3600)
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    stop = threading.Event()
    writer = threading.Thread(target=_write_during_the_run, args=(events, stop), name="events-writer")
    argv = ["load", "--world", str(WORLD_FILE), "--target", echo_server.url, "--path", "/route",
            "--countries", "KR,DE", "--rate", "100", "--duration", "3s",
            "--out", str(out), "--html", str(html)]  # fmt: skip
    writer.start()
    try:
        assert main(argv) == 0
    finally:
        stop.set()
        writer.join()
    err = capsys.readouterr().err
    assert "chaos: kill edge-node ap-northeast-2-a - SIGKILL" in err  # the live view saw it come
    report = json.loads(out.read_text())
    assert report["meta"]["events_file"] == str(events)
    assert [(e["source"], e["kind"], e["target"]) for e in report["events"]] == [
        ("chaos", "kill", "edge-node ap-northeast-2-a"),
        ("supervisor", "restart", "edge-node ap-northeast-2-a"),
    ]
    kill, restart = report["events"]
    assert 0 < kill["t_s"] < restart["t_s"] < 3.5
    assert restart["t_s"] - kill["t_s"] == pytest.approx(0.8, abs=0.3)
    assert kill["time"].startswith(time.strftime("%Y-", time.gmtime(now)))
    assert kill["message"] == "SIGKILL"
    assert abs(report["meta"]["started_ts"] + kill["t_s"] - (now + 1.2)) < 1.0
    assert sum(sum(t["regions"].values()) for t in report["timeline"]) == 300
    assert {r["requests"] for r in report["regions"].values()} == {150}
    page = _Svg()
    page.feed(html.read_text())
    for chart in ("chart-rate", "chart-p99", "chart-regions"):
        assert len(page.find("g", svg=chart, cls="event")) == 2


def test_an_unreadable_events_file_only_costs_the_events(
    echo_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGECDN_EVENTS", str(tmp_path))  # a directory
    out = tmp_path / "r.json"
    argv = ["load", "--world", str(WORLD_FILE), "--target", echo_server.url, "--countries", "KR",
            "--rate", "50", "--duration", "1s", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"edgecdn load: warning: cannot read the events file {tmp_path}" in err
    report = json.loads(out.read_text())
    assert report["events"] == []
    assert report["totals"]["requests"] == 50


def test_the_events_flag_shows_its_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EDGECDN_STATE_DIR", raising=False)
    monkeypatch.delenv("EDGECDN_EVENTS", raising=False)
    with pytest.raises(SystemExit):
        main(["load", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--events PATH" in help_text
    assert "[env: EDGECDN_EVENTS] (default: .edgecdn/chaos-events.jsonl)" in help_text
