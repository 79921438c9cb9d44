"""Ready files: atomic, round-trip, and a clear error for garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.errors import ReadyFileError
from runtime.ready import ReadyReport, read_ready_file, ready_file_reporter, write_ready_file


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ready.json"
    report = ReadyReport(
        service="edge-node", pid=42, addresses={"http": "http://127.0.0.1:1"}, extra={"x": 1}
    )
    write_ready_file(path, report)
    assert read_ready_file(path) == report
    assert [p.name for p in path.parent.iterdir()] == ["ready.json"], "no temporary file left behind"


def test_missing_file_means_not_ready_yet(tmp_path: Path) -> None:
    assert read_ready_file(tmp_path / "absent.json") is None


@pytest.mark.parametrize("content", ["", "{", "[]", json.dumps({"service": "x"})])
def test_garbage_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "ready.json"
    path.write_text(content)
    with pytest.raises(ReadyFileError, match="not a ready report"):
        read_ready_file(path)


def test_reporter_writes_own_pid(tmp_path: Path) -> None:
    path = tmp_path / "ready.json"
    ready_file_reporter("control-plane", path)({"grpc": "127.0.0.1:5"})
    report = read_ready_file(path)
    assert report is not None
    assert report.service == "control-plane"
    assert report.addresses == {"grpc": "127.0.0.1:5"}


def test_reporter_without_file_does_nothing(tmp_path: Path) -> None:
    ready_file_reporter("x", None)({"grpc": "a"})
    assert list(tmp_path.iterdir()) == []
