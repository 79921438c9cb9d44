"""The module registry over real gRPC: upload checks, list, download, delete, garbage input."""

from __future__ import annotations

import grpc
import pytest

from protos.edgecdn.v1 import apps_pb2, apps_pb2_grpc, modules_pb2, modules_pb2_grpc
from tests.control_plane.support import (
    WAT_WAGI,
    LiveControlPlane,
    app_version,
    padded_wasm,
    sha,
    upload,
    wasm,
)


async def test_upload_list_download_delete(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    data = padded_wasm(600_000)
    info = await upload(channel, live.md("operator"), data, name="big", chunk=50_000)
    assert (info.sha256, info.size_bytes, info.name) == (sha(data), len(data), "big")
    stub = modules_pb2_grpc.ModuleServiceStub(channel)
    listed = await stub.ListModules(modules_pb2.ListModulesRequest(), metadata=live.md("viewer"), timeout=5)
    assert [m.sha256 for m in listed.modules] == [sha(data)]
    chunks = [
        c
        async for c in stub.DownloadModule(
            modules_pb2.DownloadModuleRequest(sha256=sha(data)), metadata=live.md("node"), timeout=5
        )
    ]
    assert b"".join(c.data for c in chunks) == data
    assert len(chunks) > 1
    assert {c.total_size for c in chunks} == {len(data)}
    await stub.DeleteModule(modules_pb2.DeleteModuleRequest(sha256=sha(data)), metadata=live.md("operator"))
    listed = await stub.ListModules(modules_pb2.ListModulesRequest(), metadata=live.md("viewer"), timeout=5)
    assert list(listed.modules) == []


async def test_upload_is_idempotent_and_reports_imports(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    data = wasm(WAT_WAGI)
    first = await upload(channel, live.md("operator"), data)
    second = await upload(channel, live.md("operator"), data)
    assert first.sha256 == second.sha256
    assert list(first.imports) == ["wasi_snapshot_preview1.fd_write"]


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (b"\0asm\x01\0\0\0\x99garbage", {}, "does not compile"),
        (b"(module)", {}, "not a WebAssembly binary"),
        (wasm(WAT_WAGI), {"digest": "0" * 64}, "not the announced"),
        (wasm(WAT_WAGI), {"size": 3}, "announced 3"),
        (wasm(WAT_WAGI), {"digest": "XYZ"}, "not a lower-case sha256"),
    ],
)
async def test_bad_uploads_are_invalid_argument(
    live: LiveControlPlane, channel: grpc.aio.Channel, data: bytes, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(channel, live.md("operator"), data, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


async def test_delete_refused_while_an_app_uses_the_module(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    data = wasm(WAT_WAGI)
    await upload(channel, live.md("operator"), data)
    await apps_pb2_grpc.AppServiceStub(channel).RegisterApp(
        apps_pb2.RegisterAppRequest(app=app_version("shop", "1.0", {"hello": sha(data)})),
        metadata=live.md("operator"),
    )
    stub = modules_pb2_grpc.ModuleServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteModule(
            modules_pb2.DeleteModuleRequest(sha256=sha(data)), metadata=live.md("operator")
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "shop@1.0" in (caught.value.details() or "")
    listed = await stub.ListModules(modules_pb2.ListModulesRequest(), metadata=live.md("viewer"))
    assert list(listed.modules[0].used_by) == ["shop@1.0"]


async def test_unknown_module_is_not_found(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    stub = modules_pb2_grpc.ModuleServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.DownloadModule(
            modules_pb2.DownloadModuleRequest(sha256="a" * 64), metadata=live.md("node")
        ):
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_garbage_bytes_do_not_kill_the_server(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        "/edgecdn.v1.AppService/RegisterApp"
    )  # no serializers: raw bytes
    for payload in (b"\xff\xff\xff\xff", b"\x0a\x05abc", b"\x08" * 100):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await raw(payload, metadata=live.md("operator"), timeout=5)
        assert caught.value.code() != grpc.StatusCode.OK
    session: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
        "/edgecdn.v1.NodeSessionService/Connect"
    )
    call = session(metadata=live.md("node"), timeout=5)
    await call.write(b"\xff\xfe garbage")
    with pytest.raises(grpc.aio.AioRpcError):
        await call.read()
    listed = await modules_pb2_grpc.ModuleServiceStub(channel).ListModules(
        modules_pb2.ListModulesRequest(), metadata=live.md("viewer"), timeout=5
    )
    assert list(listed.modules) == []
