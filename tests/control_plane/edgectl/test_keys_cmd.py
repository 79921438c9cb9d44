"""``edgectl keys generate|show`` (local files, no control plane) and ``--sign KEY`` on
``modules push`` and ``apps register`` against a real control plane."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cpclient.operator import OperatorClient
from tests.control_plane.support import WAT_WAGI, LiveControlPlane, sha, wasm
from tests.control_plane.test_edgectl import _no_ambient_target, edgectl, fail_line

__all__ = ["_no_ambient_target"]  # the autouse fixture, so no ambient world is used


@pytest.fixture(autouse=True)
def _no_ambient_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGECTL_SIGN_KEY", raising=False)


async def test_keys_generate_then_show_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "keys" / "release.pem"
    assert await edgectl(None, "keys", "generate", str(key), "-o", "json") == 0
    made = json.loads(capsys.readouterr().out)
    assert made == {"key_id": made["key_id"], "private_key": str(key), "public_key": f"{key}.pub"}
    assert len(made["key_id"]) == 16
    for path in (key, Path(f"{key}.pub")):
        assert await edgectl(None, "keys", "show", str(path)) == 0
        assert capsys.readouterr().out.strip() == made["key_id"]
    assert await edgectl(None, "keys", "generate", str(key)) == 1
    assert fail_line(capsys) == f"edgectl: key file {key}: already exists; choose another path, or remove it"


async def test_keys_show_of_a_bad_file_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("not a key\n")
    assert await edgectl(None, "keys", "show", str(tmp_path / "notes.txt")) == 1
    assert "not a PEM file" in fail_line(capsys)
    assert await edgectl(None, "keys", "show", str(tmp_path / "missing.pem")) == 1
    assert "No such file" in fail_line(capsys)


async def test_modules_push_sign(
    live: LiveControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "k.pem"
    assert await edgectl(None, "keys", "generate", str(key), "-o", "json") == 0
    key_id = json.loads(capsys.readouterr().out)["key_id"]
    module = tmp_path / "hello.wasm"
    module.write_bytes(wasm(WAT_WAGI))
    assert await edgectl(live, "modules", "push", str(module), "--sign", str(key)) == 0
    assert f"signed by key {key_id}" in capsys.readouterr().out
    assert await edgectl(live, "modules", "list", "-o", "wide") == 0
    assert key_id in capsys.readouterr().out
    # The public key cannot sign: a clear line, nothing pushed.
    assert await edgectl(live, "modules", "push", str(module), "--sign", f"{key}.pub") == 1
    assert (
        fail_line(capsys)
        == f"edgectl: --sign: key file {key}.pub: holds a public key; signing needs the private key"
    )


async def test_apps_register_sign_signs_modules_already_stored(
    live: LiveControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "k.pem"
    assert await edgectl(None, "keys", "generate", str(key), "-o", "json") == 0
    key_id = json.loads(capsys.readouterr().out)["key_id"]
    (tmp_path / "hello.wasm").write_bytes(wasm(WAT_WAGI))
    manifest = tmp_path / "app.toml"
    manifest.write_text(
        '[app]\nname = "shop"\nversion = "1.0"\n[[route]]\npath = "/hello"\nmodule = "hello"\n'
        '[module.hello]\nsource = "hello.wasm"\n'
    )
    assert await edgectl(live, "modules", "push", str(tmp_path / "hello.wasm")) == 0  # unsigned first
    assert await edgectl(live, "apps", "register", str(manifest), "--sign", str(key)) == 0
    async with OperatorClient(live.address, live.tokens["viewer"]) as client:
        app = await client.get_app("shop", "1.0")
    assert app.modules[0].sha256 == sha(wasm(WAT_WAGI))
    assert [s.key_id for s in app.modules[0].signatures] == [key_id]
