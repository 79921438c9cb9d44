"""Module signatures in the control plane: checked at upload, stored with the module, handed out
with downloads and app versions, and gone with the module."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cpclient import ControlPlaneCallError
from cpclient.fetch import fetch_signed_module
from cpclient.operator import OperatorClient
from protos.edgecdn.v1 import common_pb2, modules_pb2, modules_pb2_grpc
from runtime.signing import SigningKey, generate_key_pair, load_signing_key, sign_digest
from tests.control_plane.support import WAT_WAGI, LiveControlPlane, app_version, padded_wasm, sha, wasm


def make_key(tmp_path: Path, name: str) -> SigningKey:
    generate_key_pair(tmp_path / f"{name}.pem")
    return load_signing_key(tmp_path / f"{name}.pem")


async def push(client: OperatorClient, data: bytes, sign: SigningKey | None) -> modules_pb2.ModuleInfo:
    return await client.push_module(
        data, name="m", abi=common_pb2.ABI_WAGI, progress=lambda _: None, sign=sign
    )


async def test_signatures_are_stored_listed_downloaded_and_added(
    live: LiveControlPlane, tmp_path: Path
) -> None:
    first, second = make_key(tmp_path, "first"), make_key(tmp_path, "second")
    data = padded_wasm(400_000)  # several download chunks: the signatures come once, first
    async with OperatorClient(live.address, live.tokens["operator"]) as client:
        info = await push(client, data, first)
        assert [s.key_id for s in info.signatures] == [first.key_id]
        # Pushing the stored module again with another key adds that key's signature.
        info = await push(client, data, second)
        assert sorted(s.key_id for s in info.signatures) == sorted([first.key_id, second.key_id])
        assert await push(client, data, None) == info  # an unsigned push takes nothing away
        listed = await client.list_modules()
        assert [len(m.signatures) for m in listed] == [2]
    async with grpc.aio.insecure_channel(live.address) as channel:
        stub = modules_pb2_grpc.ModuleServiceStub(channel)
        fetched = await fetch_signed_module(stub, sha(data), metadata=live.md("node"), timeout_s=10)
        chunks = [
            c
            async for c in stub.DownloadModule(
                modules_pb2.DownloadModuleRequest(sha256=sha(data)), metadata=live.md("node"), timeout=5
            )
        ]
    assert fetched.data == data
    assert sorted(s.key_id for s in fetched.signatures) == sorted([first.key_id, second.key_id])
    assert len(chunks) > 1
    assert all(not c.signatures for c in chunks[1:])
    signature = next(s for s in fetched.signatures if s.key_id == first.key_id)
    assert signature.signature == sign_digest(first, sha(data)).signature  # Ed25519 is deterministic


async def test_app_versions_carry_their_modules_signatures_outside_the_digest(
    live: LiveControlPlane, tmp_path: Path
) -> None:
    key = make_key(tmp_path, "k")
    data = wasm(WAT_WAGI)
    async with OperatorClient(live.address, live.tokens["operator"]) as client:
        await push(client, data, None)
        unsigned = await client.register_app(app_version("app", "1.0.0", {"m": sha(data)}))
        assert [list(m.signatures) for m in unsigned.modules] == [[]]
        await push(client, data, key)
        shown = await client.get_app("app", "1.0.0")
        assert [[s.key_id for s in m.signatures] for m in shown.modules] == [[key.key_id]]
        # Signatures belong to the module: the version and its digest are unchanged, and
        # registering it again (with or without signatures in the request) is no conflict.
        assert shown.digest == unsigned.digest
        again = app_version("app", "1.0.0", {"m": sha(data)})
        again.modules[0].signatures.add(key_id="whatever", public_key=b"x", signature=b"y")
        assert (await client.register_app(again)).digest == unsigned.digest


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("digest", "does not verify for module"),
        ("key_id", "is not the id of its public key"),
        ("public_key", "public_key must be 32 bytes"),
        ("signature", "signature must be 64 bytes"),
    ],
)
async def test_a_signature_that_does_not_verify_is_refused_at_upload(
    live: LiveControlPlane, channel: grpc.aio.Channel, tmp_path: Path, damage: str, message: str
) -> None:
    key = make_key(tmp_path, "k")
    data = wasm(WAT_WAGI)
    good = sign_digest(
        key, hashlib.sha256(b"another module").hexdigest() if damage == "digest" else sha(data)
    )
    signature = common_pb2.ModuleSignature(
        key_id=good.key_id, public_key=good.public_key, signature=good.signature
    )
    if damage == "key_id":
        signature.key_id = "0" * 16
    elif damage == "public_key":
        signature.public_key = b"short"
    elif damage == "signature":
        signature.signature = b""

    async def parts() -> AsyncIterator[modules_pb2.UploadModuleRequest]:
        header = modules_pb2.ModuleUploadHeader(name="m", sha256=sha(data), size_bytes=len(data))
        header.signatures.append(signature)
        yield modules_pb2.UploadModuleRequest(header=header)
        yield modules_pb2.UploadModuleRequest(chunk=data)

    stub = modules_pb2_grpc.ModuleServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.UploadModule(parts(), metadata=live.md("operator"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header.signatures" in (refused.value.details() or "")
    assert message in (refused.value.details() or "")
    listed = await stub.ListModules(modules_pb2.ListModulesRequest(), metadata=live.md("viewer"), timeout=5)
    assert list(listed.modules) == []


async def test_signatures_go_with_their_module(live: LiveControlPlane, tmp_path: Path) -> None:
    key = make_key(tmp_path, "k")
    data = wasm(WAT_WAGI)
    async with OperatorClient(live.address, live.tokens["operator"]) as client:
        await push(client, data, key)
        await client.delete_module(sha(data))
        info = await push(client, data, None)  # stored again, unsigned: the old signature is gone
        assert list(info.signatures) == []
        with pytest.raises(ControlPlaneCallError):
            await client.delete_module("0" * 64)
    with sqlite3.connect(live.data_dir / "control-plane.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM module_signatures").fetchone() == (0,)
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 3  # signatures came with 3


async def test_downloads_follow_signatures_added_and_the_module_deleted(
    live: LiveControlPlane, tmp_path: Path
) -> None:
    """What a download sends is kept per digest (a deploy downloads one module thousands of
    times); a signature added since, or the module's removal, shows at the next download."""
    key = make_key(tmp_path, "later")
    data = wasm(WAT_WAGI)
    async with OperatorClient(live.address, live.tokens["operator"]) as client:
        await push(client, data, None)
        async with grpc.aio.insecure_channel(live.address) as channel:
            stub = modules_pb2_grpc.ModuleServiceStub(channel)
            unsigned = await fetch_signed_module(stub, sha(data), metadata=live.md("node"), timeout_s=10)
            assert (unsigned.data, list(unsigned.signatures)) == (data, [])
            await push(client, data, key)
            signed = await fetch_signed_module(stub, sha(data), metadata=live.md("node"), timeout_s=10)
            assert [s.key_id for s in signed.signatures] == [key.key_id]
            await stub.DeleteModule(
                modules_pb2.DeleteModuleRequest(sha256=sha(data)), metadata=live.md("operator"), timeout=5
            )
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                async for _ in stub.DownloadModule(
                    modules_pb2.DownloadModuleRequest(sha256=sha(data)), metadata=live.md("node"), timeout=5
                ):
                    pass
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
