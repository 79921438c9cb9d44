"""Bearer-token auth: roles, clear UNAUTHENTICATED / PERMISSION_DENIED, tokens files."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from control_plane.auth import Denial, Principal, load_tokens_file, required_roles
from control_plane.errors import TokensFileError
from cpclient import auth_metadata
from protos.edgecdn.v1 import modules_pb2, modules_pb2_grpc, nodes_pb2, nodes_pb2_grpc
from tests.control_plane.support import WAT_WAGI, LiveControlPlane, control_plane_in_process, upload, wasm


async def list_modules(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]) -> None:
    await modules_pb2_grpc.ModuleServiceStub(channel).ListModules(
        modules_pb2.ListModulesRequest(), metadata=metadata, timeout=5
    )


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ((), "missing credentials: send metadata 'authorization: Bearer <token>'"),
        ((("authorization", "Basic abc"),), "malformed authorization: expected 'Bearer <token>'"),
        (auth_metadata("not-a-real-token"), "invalid token"),
    ],
)
async def test_unauthenticated(
    live: LiveControlPlane, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_modules(channel, metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == message


async def test_roles(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    await list_modules(channel, live.md("viewer"))
    await list_modules(channel, live.md("operator"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_modules(channel, live.md("node"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (
        caught.value.details()
        == "role 'node' may not call ModuleService/ListModules (needs operator or viewer)"
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(channel, live.md("viewer"), wasm(WAT_WAGI))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    await upload(channel, live.md("operator"), wasm(WAT_WAGI))
    connect = nodes_pb2_grpc.NodeSessionServiceStub(channel).Connect(metadata=live.md("operator"), timeout=5)
    await connect.write(nodes_pb2.NodeMessage(hello=nodes_pb2.NodeHello(node_id="n", region="r")))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await connect.read()
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_health_needs_no_token(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("tokens.json", json.dumps({"viewer": "view-token-1", "operator": ["op-token-1"]})),
        (
            "tokens.toml",
            (
                '[[tokens]]\nname = "alice"\nrole = "operator"\ntoken = "op-token-1"\n'
                '[[tokens]]\nname = "dash"\nrole = "viewer"\ntoken = "view-token-1"\n'
            ),
        ),
    ],
)
async def test_tokens_file_formats(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    table = load_tokens_file(path)
    assert table.lookup("op-token-1") is not None
    assert table.lookup("op-token-1").role == "operator"  # type: ignore[union-attr]
    async with control_plane_in_process(tmp_path / "cp", tokens_file=path) as live:
        assert not (tmp_path / "cp" / "tokens.json").exists()
        async with grpc.aio.insecure_channel(live.address) as channel:
            await list_modules(channel, auth_metadata("view-token-1"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"admin": "abcdefghij"}', "role 'admin' is not one of viewer, operator, node"),
        ('{"viewer": "short"}', "token must be a string of 8+ characters"),
        ("[1, 2]", "expected a table/object"),
        ("{", "unreadable"),
    ],
)
def test_bad_tokens_files(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(TokensFileError) as caught:
        load_tokens_file(path)
    assert reason in str(caught.value)


def test_role_table_decisions() -> None:
    assert required_roles("/grpc.health.v1.Health/Check") is None
    assert required_roles("/edgecdn.v1.NodeSessionService/Connect") == frozenset({"node"})
    assert required_roles("/edgecdn.v1.RolloutService/Pause") == frozenset({"operator"})
    # Routers follow the inventory with the node token; nodes still cannot change anything.
    assert "node" in required_roles("/edgecdn.v1.NodeService/WatchNodes")  # type: ignore[operator]
    assert "node" not in required_roles("/edgecdn.v1.DeploymentService/Deploy")  # type: ignore[operator]
    path_table = load_tokens_file
    assert callable(path_table)
    assert isinstance(Denial(kind="forbidden", message="x"), Denial)
    assert Principal(name="a", role="viewer").role == "viewer"
