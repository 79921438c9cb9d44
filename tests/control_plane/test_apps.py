"""App versions: immutable, digest-checked, latest or exact; deployments validate targets."""

from __future__ import annotations

import grpc
import pytest

from control_plane.apps import app_digest, app_problem, parse_app_ref
from protos.edgecdn.v1 import apps_pb2, apps_pb2_grpc, common_pb2, deployments_pb2, deployments_pb2_grpc
from tests.control_plane.support import WAT_WAGI, LiveControlPlane, app_version, sha, upload, wasm


async def register(
    channel: grpc.aio.Channel, live: LiveControlPlane, app: apps_pb2.AppVersion
) -> apps_pb2.AppVersion:
    return await apps_pb2_grpc.AppServiceStub(channel).RegisterApp(
        apps_pb2.RegisterAppRequest(app=app), metadata=live.md("operator"), timeout=5
    )


async def test_register_list_get(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    data = wasm(WAT_WAGI)
    await upload(channel, live.md("operator"), data)
    v1 = await register(channel, live, app_version("shop", "1.0", {"hello": sha(data)}))
    again = await register(channel, live, app_version("shop", "1.0", {"hello": sha(data)}))
    assert v1 == again
    assert v1.digest == app_digest(v1)
    await register(channel, live, app_version("shop", "1.1", {"hi": sha(data)}))
    stub = apps_pb2_grpc.AppServiceStub(channel)
    listed = await stub.ListApps(apps_pb2.ListAppsRequest(), metadata=live.md("viewer"))
    assert [(a.name, list(a.versions), a.latest) for a in listed.apps] == [("shop", ["1.0", "1.1"], "1.1")]
    latest = await stub.GetApp(apps_pb2.GetAppRequest(name="shop"), metadata=live.md("viewer"))
    exact = await stub.GetApp(apps_pb2.GetAppRequest(name="shop", version="1.0"), metadata=live.md("viewer"))
    assert (latest.version, exact.version) == ("1.1", "1.0")


async def test_versions_are_immutable(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    data = wasm(WAT_WAGI)
    await upload(channel, live.md("operator"), data)
    await register(channel, live, app_version("shop", "1.0", {"hello": sha(data)}))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register(channel, live, app_version("shop", "1.0", {"other": sha(data)}))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_unknown_module_and_unknown_app(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register(channel, live, app_version("shop", "1.0", {"hello": "b" * 64}))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "push it first" in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await apps_pb2_grpc.AppServiceStub(channel).GetApp(
            apps_pb2.GetAppRequest(name="nope", version="9"), metadata=live.md("viewer")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "app nope@9 not found"


@pytest.mark.parametrize(
    ("target", "code"),
    [
        (common_pb2.Selector(), grpc.StatusCode.INVALID_ARGUMENT),
        (common_pb2.Selector(all=True, regions=["x"]), grpc.StatusCode.INVALID_ARGUMENT),
        (common_pb2.Selector(node_ids=["ghost"]), grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_deploy_rejects_bad_targets(
    live: LiveControlPlane, channel: grpc.aio.Channel, target: common_pb2.Selector, code: grpc.StatusCode
) -> None:
    data = wasm(WAT_WAGI)
    await upload(channel, live.md("operator"), data)
    await register(channel, live, app_version("shop", "1.0", {"hello": sha(data)}))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await deployments_pb2_grpc.DeploymentServiceStub(channel).Deploy(
            deployments_pb2.DeployRequest(app_name="shop", app_version="1.0", target=target),
            metadata=live.md("operator"),
        )
    assert caught.value.code() == code


def test_app_problems_are_pure_and_specific() -> None:
    good = app_version("shop", "1.0", {"hello": "a" * 64})
    assert app_problem(good) is None
    bad_route = apps_pb2.AppVersion(name="shop", version="1", routes=[apps_pb2.Route(path="x", module="m")])
    assert app_problem(bad_route) == ("route[0].path", "'x' must start with '/'")
    origin = apps_pb2.AppVersion(name="s", version="1", routes=[apps_pb2.Route(path="/", origin="ftp://x")])
    assert app_problem(origin) is not None
    assert parse_app_ref("shop@1.2") == ("shop", "1.2")
    assert parse_app_ref("shop") == ("shop", None)
