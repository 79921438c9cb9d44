"""``edgectl apps rm NAME@VERSION`` and ``apps register --allow-origin-network`` against a real
control plane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.control_plane.support import WAT_WAGI, LiveControlPlane, control_plane_in_process, sha, wasm
from tests.control_plane.test_edgectl import _no_ambient_target, edgectl, fail_line

__all__ = ["_no_ambient_target"]  # the autouse fixture, so no ambient world is used

MANIFEST = (
    '[app]\nname = "shop"\nversion = "{version}"\n\n'
    '[[route]]\npath = "/hello"\nmodule = "hello"\n\n'
    '[[route]]\npath = "/meta/..."\norigin = "{origin}"\n\n'
    '[module.hello]\nsource = "hello.wasm"\n'
)


def _manifest(folder: Path, version: str, origin: str = "http://127.0.0.1:9") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "hello.wasm").write_bytes(wasm(WAT_WAGI))
    path = folder / f"shop-{version}.toml"
    path.write_text(MANIFEST.format(version=version, origin=origin))
    return path


async def test_apps_rm(live: LiveControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await edgectl(live, "apps", "register", str(_manifest(tmp_path / "app", "1.0"))) == 0
    assert await edgectl(live, "apps", "register", str(_manifest(tmp_path / "app", "1.1"))) == 0
    assert await edgectl(live, "deploy", "shop@1.1", "--regions=eu-1", "--allow-empty", "--no-wait") == 0
    capsys.readouterr()
    assert await edgectl(live, "apps", "rm", "shop@1.0") == 0
    assert capsys.readouterr().out.strip() == "removed shop@1.0"
    assert await edgectl(live, "apps", "rm", "shop@1.1") == 1
    line = fail_line(capsys)
    assert line.startswith("edgectl: app shop@1.1 is in use: deployment(s) 1 still in force"), line
    assert await edgectl(live, "apps", "rm", "shop@1.0") == 1
    assert "app shop@1.0 not found" in fail_line(capsys)
    assert await edgectl(live, "apps", "rm", "shop") == 2
    assert "apps rm needs NAME@VERSION" in fail_line(capsys)


async def test_apps_rm_json_names_the_collected_modules(
    live: LiveControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await edgectl(live, "apps", "register", str(_manifest(tmp_path / "app", "1.0"))) == 0
    capsys.readouterr()
    assert await edgectl(live, "apps", "rm", "shop@1.0", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "name": "shop",
        "version": "1.0",
        "removed_modules": [sha(wasm(WAT_WAGI))],
    }


async def test_register_allows_a_link_local_origin_only_when_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path / "app", "1.0", origin="http://169.254.169.254/")
    async with control_plane_in_process(tmp_path / "cp", allow_origin_networks=("169.254.0.0/16",)) as live:
        assert await edgectl(live, "apps", "register", str(manifest)) == 1
        line = fail_line(capsys)
        assert "route[1].origin" in line
        assert "--allow-origin-network" in line
        flag = "--allow-origin-network=169.254.169.254/32"
        assert await edgectl(live, "apps", "register", str(manifest), flag) == 0
