"""RegisterApp called directly (no edgectl) is held to the manifest rules: every form the
issue found stored is refused with INVALID_ARGUMENT saying what is wrong, and nothing is stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from protos.edgecdn.v1 import apps_pb2, apps_pb2_grpc, common_pb2
from tests.control_plane.support import (
    WAT_WAGI,
    LiveControlPlane,
    app_version,
    control_plane_in_process,
    sha,
    upload,
    wasm,
)

WAGI = wasm(WAT_WAGI)
REACTOR = wasm(
    """(module (memory (export "memory") 1)
  (func (export "edge_alloc") (param i32) (result i32) i32.const 0)
  (func (export "edge_handle") (param i32 i32) (result i64) i64.const 0))"""
)

Edit = Callable[[apps_pb2.AppVersion], None]


def _env(app: apps_pb2.AppVersion) -> None:
    app.modules[0].env["HTTP_CF_IPCOUNTRY"] = "US"


def _memory(app: apps_pb2.AppVersion) -> None:
    app.modules[0].memory_bytes = 2**63


def _abi(app: apps_pb2.AppVersion) -> None:
    app.modules[0].abi = 7  # type: ignore[assignment]


def _timeout(app: apps_pb2.AppVersion) -> None:
    app.modules[0].timeout.CopyFrom(Duration(seconds=3600))


def _duplicate_route(app: apps_pb2.AppVersion) -> None:
    app.routes.add(path="/hello", module="hello")


def _nul_path(app: apps_pb2.AppVersion) -> None:
    app.routes[0].path = "/hel\x00lo"


def _unused_module(app: apps_pb2.AppVersion) -> None:
    app.modules.add(name="spare", sha256=sha(WAGI), abi=common_pb2.ABI_WAGI)


def _metadata_origin(app: apps_pb2.AppVersion) -> None:
    app.routes.add(path="/meta/...", origin="http://169.254.169.254/")


def _wrong_abi(app: apps_pb2.AppVersion) -> None:
    app.modules[0].sha256 = sha(REACTOR)  # a reactor module named as wagi


def _module_name(app: apps_pb2.AppVersion) -> None:
    app.modules[0].name = "bad name"
    app.routes[0].module = "bad name"


def _version(app: apps_pb2.AppVersion) -> None:
    app.version = "1.0 beta"


def _output(app: apps_pb2.AppVersion) -> None:
    app.modules[0].max_output_bytes = 2**40


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (_env, "module.hello.env.HTTP_CF_IPCOUNTRY", "set by the host"),
        (_memory, "module.hello.memory", "9223372036854775808 bytes is outside 64KiB..256MiB"),
        (_abi, "module.hello.abi", "7 is not an ABI"),
        (_timeout, "module.hello.timeout", "3600s is outside (0, 60s]"),
        (_duplicate_route, "route[1].path", "'/hello' is already route[0]"),
        (_nul_path, "route[0].path", "control character"),
        (_unused_module, "module.spare", "no route uses this module"),
        (_metadata_origin, "route[1].origin", "link-local or metadata address (in 169.254.0.0/16)"),
        (_wrong_abi, "module.hello.abi", "does not implement the wagi ABI"),
        (_module_name, "module.bad name", "must be 1-64"),
        (_version, "app.version", "must be 1-128"),
        (_output, "module.hello.max_output", "outside 1B..64MiB"),
    ],
)
async def test_register_app_refuses_what_the_manifest_rules_refuse(
    live: LiveControlPlane, channel: grpc.aio.Channel, edit: Edit, field: str, words: str
) -> None:
    md = live.md("operator")
    await upload(channel, md, WAGI)
    await upload(channel, md, REACTOR)
    stub = apps_pb2_grpc.AppServiceStub(channel)
    app = app_version("shop", "1.0", {"hello": sha(WAGI)})
    edit(app)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RegisterApp(apps_pb2.RegisterAppRequest(app=app), metadata=md, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = caught.value.details() or ""
    assert details.startswith(f"{field}: "), details
    assert words in details
    listed = await stub.ListApps(apps_pb2.ListAppsRequest(), metadata=md)
    assert list(listed.apps) == [], "a refused version is not stored"


async def test_the_same_app_without_the_fault_is_accepted(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    md = live.md("operator")
    await upload(channel, md, WAGI)
    await upload(channel, md, REACTOR)
    app = app_version("shop", "1.0", {"hello": sha(WAGI), "fast": sha(REACTOR)})
    app.modules[1].abi = common_pb2.ABI_REACTOR
    app.routes.add(path="/cdn/...", origin="http://127.0.0.1:9000")
    stored = await apps_pb2_grpc.AppServiceStub(channel).RegisterApp(
        apps_pb2.RegisterAppRequest(app=app), metadata=md, timeout=10
    )
    assert stored.digest


async def test_the_operator_may_allow_a_link_local_origin(tmp_path: Path) -> None:
    async with control_plane_in_process(tmp_path / "cp", allow_origin_networks=("169.254.169.0/24",)) as live:
        md = live.md("operator")
        async with grpc.aio.insecure_channel(live.address) as channel:
            await upload(channel, md, WAGI)
            stub = apps_pb2_grpc.AppServiceStub(channel)
            app = app_version("shop", "1.0", {"hello": sha(WAGI)})
            app.routes.add(path="/meta/...", origin="http://169.254.169.254/")
            await stub.RegisterApp(apps_pb2.RegisterAppRequest(app=app), metadata=md, timeout=10)
            app.version = "1.1"
            app.routes[1].origin = "http://169.254.1.1/"
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.RegisterApp(apps_pb2.RegisterAppRequest(app=app), metadata=md, timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
