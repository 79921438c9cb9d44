"""edgectl against a real control plane: commands, JSON output, and one-line failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from control_plane.edgectl.cli import build_parser, main
from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, SessionSettings
from cpclient.backoff import Backoff
from cpclient.errors import ApplyError
from protos.edgecdn.v1 import nodes_pb2
from runtime.world_state import WorldState, write_world_state
from tests.control_plane.support import WAT_WAGI, LiveControlPlane, sha, wasm


@pytest.fixture(autouse=True)
def _no_ambient_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "EDGECTL_SERVER",
        "EDGECTL_TOKEN",
        "EDGECTL_CA_CERT",
        "EDGECTL_CLIENT_CERT",
        "EDGECTL_CLIENT_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EDGECDN_STATE_DIR", str(tmp_path / "no-world"))


async def edgectl(live: LiveControlPlane | None, *argv: str, role: str = "operator") -> int:
    prefix = [] if live is None else [f"--server={live.address}", f"--token={live.tokens[role]}"]
    return await asyncio.to_thread(main, [*prefix, *argv])


def fail_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "hello.wasm").write_bytes(wasm(WAT_WAGI))
    (folder / "edge.toml").write_text(
        '[app]\nname = "geo-hello"\nversion = "1.0.0"\n\n'
        '[[route]]\npath = "/hello"\nmodule = "hello"\n\n'
        '[[route]]\npath = "/static/..."\norigin = "http://127.0.0.1:9"\n\n'
        '[module.hello]\nsource = "hello.wasm"\nmemory = "2MiB"\ntimeout = "50ms"\n'
    )
    return folder


@pytest.fixture
async def nodes(live: LiveControlPlane) -> AsyncIterator[list[NodeSession]]:
    def apply(assignment: nodes_pb2.Assignment, modules: object) -> None:
        if assignment.app.version == "bad":
            raise ApplyError(code="module_compile_failed", reason="refused by test node")

    sessions = [
        NodeSession(
            SessionSettings(target=live.address, token=live.tokens["node"], backoff=Backoff(initial_s=0.05)),
            NodeIdentity(node_id=f"{region}-a", region=region, address=f"http://{region}.test"),
            apply=apply,
            store=MemoryModuleStore(),
        )
        for region in ("eu-1", "us-1")
    ]
    tasks = [asyncio.create_task(s.run(), name=s.identity.node_id) for s in sessions]
    for session in sessions:
        await session.wait_until(lambda s: s.connected, 10)
    yield sessions
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)


async def test_modules_push_list_rm(
    live: LiveControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hello.wasm"
    path.write_bytes(wasm(WAT_WAGI))
    assert await edgectl(live, "modules", "push", str(path)) == 0
    assert sha(path.read_bytes()) in capsys.readouterr().out
    assert await edgectl(live, "-o", "json", "modules", "list", role="viewer") == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["name"], listed["sha256"]) == ("hello", sha(path.read_bytes()))
    assert await edgectl(live, "modules", "rm", sha(path.read_bytes())) == 0
    assert await edgectl(live, "-o", "json", "modules", "list") == 0
    assert "deleted" in capsys.readouterr().out


async def test_register_deploy_and_list_nodes(
    live: LiveControlPlane, nodes: list[NodeSession], app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await edgectl(live, "apps", "register", str(app_dir / "edge.toml")) == 0
    assert "registered geo-hello@1.0.0" in capsys.readouterr().out
    assert await edgectl(live, "-o", "json", "apps", "show", "geo-hello") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in shown["routes"]] == ["/hello", "/static/..."]
    assert shown["modules"][0]["memory_bytes"] == str(2 * 1024 * 1024)
    assert await edgectl(live, "deploy", "geo-hello@1.0.0", "--regions", "eu-1") == 0
    assert "1/1 nodes run geo-hello@1.0.0" in capsys.readouterr().out
    assert await edgectl(live, "deploy", "geo-hello@1.0.0", "--nodes", "us-1-a", "--no-wait") == 0
    assert "deployment 2: geo-hello@1.0.0 assigned to 1 nodes" in capsys.readouterr().out
    for _ in range(100):  # --no-wait returned at once; the ACK reaches the server shortly
        assert await edgectl(live, "-o", "json", "nodes", "list", role="viewer") == 0
        listed = {n["node_id"]: n for n in json.loads(capsys.readouterr().out)}
        if listed["us-1-a"]["assignment_version"] == "2":
            break
        await asyncio.sleep(0.05)
    assert {k: listed["eu-1-a"][k] for k in ("region", "address", "status", "app", "app_version")} == {
        "region": "eu-1",
        "address": "http://eu-1.test",
        "status": "ready",
        "app": "geo-hello",
        "app_version": "1.0.0",
    }
    assert (listed["us-1-a"]["app"], listed["us-1-a"]["assignment_version"]) == ("geo-hello", "2")
    assert await edgectl(live, "nodes", "list", role="viewer") == 0
    assert "eu-1-a" in capsys.readouterr().out
    assert await edgectl(live, "-o", "json", "status", role="viewer") == 0
    assert json.loads(capsys.readouterr().out)["nodes"] == {"ready": 2}


async def test_deploy_reports_a_nack(
    live: LiveControlPlane, nodes: list[NodeSession], app_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = app_dir / "edge.toml"
    manifest.write_text(manifest.read_text().replace('version = "1.0.0"', 'version = "bad"'))
    assert await edgectl(live, "apps", "register", str(manifest)) == 0
    capsys.readouterr()
    assert await edgectl(live, "deploy", "geo-hello@bad", "--all") == 1
    line = fail_line(capsys)
    assert line.startswith("edgectl: deployment 1: 2 of 2 nodes refused it")
    assert "refused by test node" in line


async def test_tables_fit_80_columns_and_wide_shows_every_column(
    live: LiveControlPlane,
    nodes: list[NodeSession],
    app_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    manifest = app_dir / "edge.toml"
    manifest.write_text(manifest.read_text().replace('version = "1.0.0"', 'version = "bad"'))
    assert await edgectl(live, "apps", "register", str(manifest)) == 0
    assert await edgectl(live, "deploy", "geo-hello@bad", "--all") == 1
    capsys.readouterr()
    digest = sha(wasm(WAT_WAGI))

    assert await edgectl(live, "nodes", "list", role="viewer") == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert out.split()[:6] == ["NODE", "REGION", "STATUS", "APP", "RPS", "ERR/S"]
    assert "http://" not in out
    for node_id in ("eu-1-a", "us-1-a"):  # under the table, each NACK whole
        assert f"{node_id}: last error: module_compile_failed: refused by test node" in out
    assert await edgectl(live, "-o", "wide", "nodes", "list", role="viewer") == 0
    out = capsys.readouterr().out
    assert "LAST ERROR" in out.splitlines()[0]
    assert "http://eu-1.test" in out
    assert "last error:" not in out

    assert await edgectl(live, "modules", "list") == 0
    out = capsys.readouterr().out
    assert digest[:16] in out
    assert digest not in out
    for argv in (["modules", "list", "-o", "wide"], ["-o", "wide", "apps", "show", "geo-hello@bad"]):
        assert await edgectl(live, *argv) == 0
        assert digest in capsys.readouterr().out
    assert await edgectl(live, "status", "-o", "wide") == 0
    assert "nodes: 2 ready" in capsys.readouterr().out
    assert await edgectl(live, "rollout", "list", "-o", "wide") == 0
    assert "no rollouts yet" in capsys.readouterr().out
    assert await edgectl(live, "traces", "list", "-o", "wide") == 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["apps", "show", "nope"], "edgectl: app nope not found"),
        (["apps", "show", "nope@2"], "edgectl: app nope@2 not found"),
        (["modules", "rm", "a" * 64], f"edgectl: module {'a' * 64} not found"),
        (["deploy", "nope@1", "--all"], "edgectl: app nope@1 not found"),
        (["deploy", "nope", "--all"], "edgectl: deploy needs NAME@VERSION, got 'nope'"),
    ],
)
async def test_not_found_and_usage(
    live: LiveControlPlane, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert await edgectl(live, *argv) != 0
    assert fail_line(capsys) == expected


async def test_invalid_module(
    live: LiveControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.wasm"
    path.write_bytes(b"\0asm\x01\0\0\0\x99")
    assert await edgectl(live, "modules", "push", str(path)) == 1
    line = fail_line(capsys)
    assert line.startswith("edgectl: rejected: does not compile: ")


async def test_bad_token_and_role(live: LiveControlPlane, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        await asyncio.to_thread(main, ["--server", live.address, "--token", "wrong-token", "apps", "list"])
        == 1
    )
    assert fail_line(capsys) == (
        "edgectl: authentication failed: invalid token (check --token or EDGECTL_TOKEN)"
    )
    assert await edgectl(live, "modules", "rm", "a" * 64, role="viewer") == 1
    assert fail_line(capsys) == (
        "edgectl: permission denied: role 'viewer' may not call ModuleService/DeleteModule (needs operator)"
    )


async def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        await asyncio.to_thread(main, ["--server", "127.0.0.1:1", "--token", "t" * 10, "nodes", "list"]) == 1
    )
    assert fail_line(capsys).startswith("edgectl: cannot reach the control plane at 127.0.0.1:1 (")


async def test_no_server_and_no_world(capsys: pytest.CaptureFixture[str]) -> None:
    assert await asyncio.to_thread(main, ["nodes", "list"]) == 1
    line = fail_line(capsys)
    assert line.startswith("edgectl: no --server given (nor EDGECTL_* set) and ")
    assert "no running world" in line


async def test_missing_manifest_file(
    live: LiveControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await edgectl(live, "apps", "register", str(tmp_path / "nope.toml")) == 1
    assert fail_line(capsys).startswith("edgectl: invalid manifest: ")


async def test_server_and_token_from_world_state(
    live: LiveControlPlane,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state_dir = tmp_path / "world"
    monkeypatch.setenv("EDGECDN_STATE_DIR", str(state_dir))
    write_world_state(
        state_dir / "world.json",
        WorldState(
            world_file="w.toml",
            supervisor_pid=1,
            control_plane_address=live.address,
            tokens=dict(live.tokens),
        ),
    )
    assert await asyncio.to_thread(main, ["-o", "json", "status"]) == 0
    assert json.loads(capsys.readouterr().out)["server"] == live.address


@pytest.mark.parametrize(
    ("argv", "output"),
    [
        (["nodes", "list", "-o", "json"], "json"),
        (["-o", "json", "nodes", "list"], "json"),
        (["nodes", "list"], "table"),
        (["nodes", "list", "-o", "wide"], "wide"),
        (["-o", "wide", "traces", "list"], "wide"),
        (["deploy", "geo-hello@1.0.0", "--all", "-o", "json"], "json"),
    ],
)
def test_output_flag_goes_before_or_after_the_command(argv: list[str], output: str) -> None:
    assert build_parser().parse_args(argv).output == output
