"""``edgectl cache purge`` against the real in-process control plane with real node sessions."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from control_plane.edgectl.cli import main
from tests.control_plane.support import LiveControlPlane
from tests.control_plane.test_purge import nodes, silent_node


@pytest.fixture(autouse=True)
def _no_ambient_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("EDGECTL_SERVER", "EDGECTL_TOKEN", "EDGECTL_CA_CERT", "EDGECTL_CLIENT_CERT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EDGECDN_STATE_DIR", str(tmp_path / "no-world"))
    monkeypatch.setenv("COLUMNS", "80")


async def edgectl(live: LiveControlPlane, *argv: str, role: str = "operator") -> int:
    target = [f"--server={live.address}", f"--token={live.tokens[role]}"]
    return await asyncio.to_thread(main, [*target, *argv])


async def test_purge_reports_per_region(live: LiveControlPlane, capsys: pytest.CaptureFixture[str]) -> None:
    async with nodes(live, 6) as caches:
        assert (
            await edgectl(live, "cache", "purge", "--tag", "t1", "--regions", "eu-1,us-1", "-o", "json") == 0
        )
        out = json.loads(capsys.readouterr().out)
        assert [r["region"] for r in out["regions"]] == ["eu-1", "us-1"]
        assert all(r["nodes_done"] == r["nodes_targeted"] == 2 for r in out["regions"])
        assert sum(len(c.calls) for c in caches.values()) == 4
        assert await edgectl(live, "cache", "purge", "--prefix", "/img/", "--soft") == 0
        table = capsys.readouterr().out
        assert "3/3" not in table  # two nodes per region
        assert "ap-1" in table
        assert "2/2" in table


async def test_late_nodes_exit_1(live: LiveControlPlane, capsys: pytest.CaptureFixture[str]) -> None:
    async with nodes(live, 3), silent_node(live, "eu-1-quiet", "eu-1"):
        assert await edgectl(live, "cache", "purge", "--all", "--timeout", "300ms") == 1
        captured = capsys.readouterr()
        assert "eu-1-quiet" in captured.out
        assert "1 node(s) did not answer" in captured.err


async def test_refusals(live: LiveControlPlane, capsys: pytest.CaptureFixture[str]) -> None:
    assert await edgectl(live, "cache", "purge") == 2
    assert "choose what to purge" in capsys.readouterr().err
    assert await edgectl(live, "cache", "purge", "--prefix", "img") == 1
    assert "must start with '/'" in capsys.readouterr().err
    assert await edgectl(live, "cache", "purge", "--all", role="viewer") == 1
    assert "may not call CacheService/PurgeCache (needs operator)" in capsys.readouterr().err
