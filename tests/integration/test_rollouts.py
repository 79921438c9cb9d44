"""Progressive rollouts in a real world under load, driven with edgectl as an operator would.

A good version goes through three waves; a broken one (every /hello a 500) is rolled back by
itself during its first wave, and no client of another region ever gets it (checked on
every answer's ``x-edge-app`` through the load report); a wave whose node never ACKs hits
the progress deadline naming the node; a control plane SIGKILLed mid-bake resumes; operators
pause, resume, promote and abort; a viewer may watch but not act.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.local_world import LocalWorld
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEOUL = "ap-northeast-2"
WAVES = "ap-northeast-2;ap-northeast-1,ap-south-1;*"


async def edgectl_json(world: LocalWorld, *args: str, token: str | None = None) -> Any:
    extra = ("--token", token) if token else ()
    result = await world.run("edgectl", *extra, *args, "-o", "json", timeout_s=120)
    assert result.code == 0, result.err
    return result.json()


async def register(world: LocalWorld, tmp_path: Path, version: str, *, broken: bool = False) -> None:
    """Register geo-hello ``version``: 1.0.0's modules, or 1.2.0's broken /hello."""
    handlers = tmp_path / f"handlers-{version}"
    shutil.copytree(
        REPO_ROOT / "handlers", handlers, ignore=shutil.ignore_patterns("rust", "src", "*.c", "*.h")
    )
    manifest = handlers / ("geo-hello-broken" if broken else "geo-hello") / "app.toml"
    text = manifest.read_text()
    manifest.write_text(
        text.replace('version = "1.2.0"' if broken else 'version = "1.0.0"', f'version = "{version}"', 1)
    )
    result = await world.run("edgectl", "apps", "register", str(manifest))
    assert result.code == 0, result.err


async def until_state(
    world: LocalWorld, rollout_id: str, states: set[str], timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        rollout: dict[str, Any] = await edgectl_json(world, "rollout", "status", rollout_id)
        if rollout["state"] in states:
            return rollout
        assert time.monotonic() < deadline, f"{rollout_id} stayed {rollout['state']}: {rollout['message']}"
        await asyncio.sleep(0.3)


async def versions_by_region(world: LocalWorld) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for node in (await world.nodes()).values():
        found.setdefault(node["region"], set()).add(node["app_version"])
    return found


async def back_to(world: LocalWorld, version: str) -> None:
    """Leave the world as the next test expects it: every node on ``version``."""
    deploy = await world.run("edgectl", "deploy", f"geo-hello@{version}", "--all", "--force")
    assert deploy.code == 0, deploy.err


async def test_a_good_version_goes_through_three_waves(local_world: LocalWorld, tmp_path: Path) -> None:
    await register(local_world, tmp_path, "1.1.0")
    rollout = await edgectl_json(
        local_world,
        "rollout",
        "start",
        "geo-hello@1.1.0",
        "--waves",
        WAVES,
        "--bake",
        "3s",
        "--min-requests",
        "20",
    )
    assert rollout["state"] in {"deploying", "baking"}
    assert [len(w["regions"]) for w in rollout["waves"]] == [1, 2, 5]  # '*' is every other region
    done = await until_state(local_world, rollout["id"], {"succeeded", "rolled_back", "aborted"})
    assert done["state"] == "succeeded", done["message"]
    assert [w["state"] for w in done["waves"]] == ["succeeded"] * 3
    assert all(w["gate"]["passed"] for w in done["waves"])
    assert set().union(*(await versions_by_region(local_world)).values()) == {"1.1.0"}
    deploying = [t for t in done["history"] if t["to"] == "deploying"]
    assert len(deploying) == 3, "each wave deployed once"
    await back_to(local_world, "1.0.0")


async def test_a_broken_version_is_rolled_back_during_wave_one(
    local_world: LocalWorld, tmp_path: Path
) -> None:
    await register(local_world, tmp_path, "1.2.0", broken=True)
    out = tmp_path / "load.json"
    load = await local_world.spawn(
        "edgecdn",
        "load",
        "--mix",
        "KR=40,JP=30,DE=30",
        "--rate",
        "150",
        "--duration",
        "16s",
        "--out",
        str(out),
    )
    await asyncio.sleep(3)
    rollout = await edgectl_json(
        local_world, "rollout", "start", "geo-hello@1.2.0", "--waves", WAVES, "--bake", "30s",
        "--max-error-rate", "1%", "--min-requests", "50",
    )  # fmt: skip
    done = await until_state(local_world, rollout["id"], {"succeeded", "rolled_back", "aborted"})
    assert done["state"] == "rolled_back", done["message"]
    first = done["waves"][0]
    assert first["state"] == "rolled_back"
    assert first["gate"]["passed"] is False
    assert first["gate"]["error_rate"] > 0.5
    assert "rolling back" in first["gate"]["reason"]
    assert [w["state"] for w in done["waves"][1:]] == ["pending", "pending"]
    assert (await versions_by_region(local_world))[SEOUL] == {"1.0.0"}
    _, err = await asyncio.wait_for(load.communicate(), 60)
    assert load.returncode == 0, err.decode()
    report = json.loads(out.read_bytes())
    for region, figures in report["regions"].items():
        if region != SEOUL:
            assert "geo-hello@1.2.0" not in figures["versions"], f"{region} served the broken version"
    for country in ("JP", "DE"):
        assert "geo-hello@1.2.0" not in report["countries"][country]["versions"]
    # Korea's clients got the broken version for a moment, then the old one again.
    seoul_seconds = [second["versions"].get(SEOUL, {}) for second in report["timeline"]]
    last_broken = max(i for i, versions in enumerate(seoul_seconds) if "geo-hello@1.2.0" in versions)
    assert any("geo-hello@1.0.0" in versions for versions in seoul_seconds[last_broken + 1 :])
    assert report["totals"]["errors"] / report["totals"]["requests"] < 0.01


async def test_a_wave_that_never_acks_hits_the_progress_deadline(
    local_world: LocalWorld, tmp_path: Path
) -> None:
    await register(local_world, tmp_path, "1.3.0")
    assert (await local_world.run("edgecdn", "chaos", "freeze", "ap-northeast-1-a")).code == 0
    try:
        rollout = await edgectl_json(
            local_world, "rollout", "start", "geo-hello@1.3.0", "--waves", "ap-northeast-1;*", "--bake", "2s",
            "--progress-deadline", "3s",
        )  # fmt: skip
        stuck = await until_state(local_world, rollout["id"], {"rolling_back", "rolled_back"}, timeout_s=20)
        assert "ap-northeast-1-a" in stuck["message"]
    finally:
        assert (await local_world.run("edgecdn", "chaos", "thaw", "ap-northeast-1-a")).code == 0
    done = await until_state(local_world, rollout["id"], {"rolled_back"}, timeout_s=30)
    assert "ap-northeast-1-a" in done["waves"][0]["gate"]["reason"] if done["waves"][0]["gate"] else True
    assert (await versions_by_region(local_world))["ap-northeast-1"] == {"1.0.0"}


async def test_a_rollout_survives_its_control_plane(local_world: LocalWorld, tmp_path: Path) -> None:
    await register(local_world, tmp_path, "1.4.0")
    rollout = await edgectl_json(
        local_world, "rollout", "start", "geo-hello@1.4.0", "--waves", f"{SEOUL};*", "--bake", "8s"
    )
    baking = await until_state(local_world, rollout["id"], {"baking"})
    assert baking["current_wave"] == 0
    assert (await local_world.run("edgecdn", "chaos", "kill", "control-plane")).code == 0
    await asyncio.sleep(3)  # the supervisor restarts it on its port
    done = await until_state(local_world, rollout["id"], {"succeeded", "rolled_back"}, timeout_s=60)
    assert done["state"] == "succeeded", done["message"]
    assert len([t for t in done["history"] if t["to"] == "deploying"]) == 2, "no wave deployed twice"
    assert set().union(*(await versions_by_region(local_world)).values()) == {"1.4.0"}
    await back_to(local_world, "1.0.0")


async def test_operators_steer_and_viewers_only_watch(local_world: LocalWorld, tmp_path: Path) -> None:
    await register(local_world, tmp_path, "1.5.0")
    viewer = local_world.state.tokens["viewer"]
    rollout = await edgectl_json(
        local_world, "rollout", "start", "geo-hello@1.5.0", "--waves", WAVES, "--bake", "60s"
    )
    rollout_id = rollout["id"]
    await until_state(local_world, rollout_id, {"baking"})
    refused = await local_world.run("edgectl", "--token", viewer, "rollout", "pause", rollout_id)
    assert refused.code == 1
    assert "permission" in refused.err.lower() or "denied" in refused.err.lower(), refused.err
    assert (await edgectl_json(local_world, "rollout", "status", rollout_id, token=viewer))[
        "id"
    ] == rollout_id

    paused = await edgectl_json(local_world, "rollout", "pause", rollout_id, "--reason", "lunch")
    assert paused["state"] == "paused"
    held = paused["waves"][0]["bake_elapsed_s"]
    await asyncio.sleep(1.5)
    still = await edgectl_json(local_world, "rollout", "status", rollout_id)
    assert still["waves"][0]["bake_elapsed_s"] == held, "the bake clock stops while paused"
    deploy = await local_world.run("edgectl", "deploy", "geo-hello@1.0.0", "--all")
    assert deploy.code == 1
    assert rollout_id in deploy.err, "a deploy during a rollout names the rollout"
    assert (await edgectl_json(local_world, "rollout", "resume", rollout_id))["state"] == "baking"
    promoted = await edgectl_json(local_world, "rollout", "promote", rollout_id, "--reason", "looks good")
    assert promoted["waves"][0]["state"] == "succeeded"
    await until_state(local_world, rollout_id, {"baking"})
    aborted_now = await edgectl_json(local_world, "rollout", "abort", rollout_id, "--reason", "enough")
    assert aborted_now["state"] in {"rolling_back", "aborted"}
    done = await until_state(local_world, rollout_id, {"aborted"})
    actions = [(a["kind"], a["reason"]) for a in done["actions"]]
    assert actions == [("pause", "lunch"), ("resume", ""), ("promote", "looks good"), ("abort", "enough")]
    assert all("operator" in a["actor"] for a in done["actions"])
    versions = await versions_by_region(local_world)
    assert versions[SEOUL] == versions["ap-northeast-1"] == versions["ap-south-1"] == {"1.0.0"}
