"""Download a module by digest and prove the bytes are what the digest names."""

from __future__ import annotations

import hashlib

import grpc

from cpclient.errors import ModuleFetchError
from protos.edgecdn.v1 import modules_pb2, modules_pb2_grpc


async def fetch_module(
    stub: modules_pb2_grpc.ModuleServiceAsyncStub,
    sha256: str,
    *,
    metadata: tuple[tuple[str, str], ...],
    timeout_s: float,
) -> bytes:
    """The module's bytes, sha256-verified; ModuleFetchError otherwise."""
    data = bytearray()
    total = -1
    try:
        call = stub.DownloadModule(
            modules_pb2.DownloadModuleRequest(sha256=sha256), metadata=metadata, timeout=timeout_s
        )
        async for chunk in call:
            if chunk.offset != len(data):
                raise ModuleFetchError(sha256=sha256, code="module_fetch_failed", reason="chunk out of order")
            data += chunk.data
            total = chunk.total_size
    except grpc.aio.AioRpcError as exc:
        raise ModuleFetchError(
            sha256=sha256, code="module_fetch_failed", reason=f"{exc.code().name}: {exc.details()}"
        ) from exc
    if total != len(data):
        raise ModuleFetchError(
            sha256=sha256, code="module_fetch_failed", reason=f"got {len(data)} of {total} bytes"
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ModuleFetchError(
            sha256=sha256, code="digest_mismatch", reason=f"downloaded bytes hash to {actual}"
        )
    return bytes(data)
