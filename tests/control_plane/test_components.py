"""Components through the control plane: an upload is compiled as a component (its preamble
says so), kept compiled for the nodes, and a version is held to the ABI it names for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from control_plane.edgectl.cli import main
from protos.edgecdn.v1 import apps_pb2, apps_pb2_grpc, common_pb2
from tests.conftest import REPO_ROOT
from tests.control_plane.support import (
    WAT_WAGI,
    LiveControlPlane,
    app_version,
    control_plane_in_process,
    sha,
    upload,
    wasm,
)

GEO_JS = REPO_ROOT / "handlers" / "components" / "geo-greeting-js" / "geo_greeting_js.wasm"


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveControlPlane]:
    async with control_plane_in_process(tmp_path / "cp", module_cache_dir=tmp_path / "compiled") as running:
        yield running


def with_abi(app: apps_pb2.AppVersion, abi: common_pb2.Abi.ValueType) -> apps_pb2.AppVersion:
    for module in app.modules:
        module.abi = abi
        module.memory_bytes = 64 << 20
    return app


async def register(channel: grpc.aio.Channel, live: LiveControlPlane, app: apps_pb2.AppVersion) -> str:
    """ "" when registered, else the refusal's message."""
    try:
        await apps_pb2_grpc.AppServiceStub(channel).RegisterApp(
            apps_pb2.RegisterAppRequest(app=app), metadata=live.md("operator"), timeout=30
        )
    except grpc.aio.AioRpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    return ""


async def test_a_component_is_compiled_once_and_held_to_its_abi(
    live: LiveControlPlane, tmp_path: Path
) -> None:
    component, module = GEO_JS.read_bytes(), wasm(WAT_WAGI)
    async with grpc.aio.insecure_channel(live.address) as channel:
        info = await upload(channel, live.md("operator"), component, name="geo-greeting-js")
        assert "wasi:http/types@0.2.10" in info.imports
        # The check compiled it into the nodes' directory: a node sharing it loads, not compiles.
        assert list((tmp_path / "compiled").glob(f"*/{sha(component)}.component.cwasm"))
        await upload(channel, live.md("operator"), module)
        greet = {"greet": sha(component)}
        assert (
            await register(
                channel, live, with_abi(app_version("spin", "1.0", greet), common_pb2.ABI_WASI_HTTP)
            )
            == ""
        )
        refused = await register(
            channel, live, with_abi(app_version("spin", "1.1", greet), common_pb2.ABI_WAGI)
        )
        assert refused.startswith("INVALID_ARGUMENT: ")
        assert "a component: declare it with abi = 'wasi-http'" in refused
        wagi = {"hello": sha(module)}
        refused = await register(
            channel, live, with_abi(app_version("spin", "1.2", wagi), common_pb2.ABI_WASI_HTTP)
        )
        assert "a core module, not a component" in refused


async def test_a_damaged_component_is_refused_at_upload(live: LiveControlPlane) -> None:
    damaged = GEO_JS.read_bytes()[: 1 << 20]  # a component's preamble, then cut off
    async with grpc.aio.insecure_channel(live.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await upload(channel, live.md("operator"), damaged)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not compile" in (caught.value.details() or "")


async def test_edgectl_pushes_a_component_and_lists_its_abi(
    live: LiveControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    operator = [f"--server={live.address}", f"--token={live.tokens['operator']}"]
    pushed = await asyncio.to_thread(main, [*operator, "modules", "push", str(GEO_JS), "--abi", "wasi-http"])
    assert pushed == 0, capsys.readouterr().err
    assert sha(GEO_JS.read_bytes()) in capsys.readouterr().out
    assert await asyncio.to_thread(main, [*operator, "modules", "list"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "geo_greeting_js" in line]
    assert "wasi-http" in row.split()
