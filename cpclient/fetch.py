"""Download a module by digest and prove the bytes are what the digest names.

The download also brings the signatures stored with the module (in its first chunk); a
caller that requires signatures checks them with ``runtime.signing`` before compiling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import grpc

from cpclient.errors import ModuleFetchError
from protos.edgecdn.v1 import common_pb2, modules_pb2, modules_pb2_grpc


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchedModule:
    """A module's sha256-verified bytes and the signatures the control plane holds for it."""

    data: bytes
    signatures: tuple[common_pb2.ModuleSignature, ...]


async def fetch_module(
    stub: modules_pb2_grpc.ModuleServiceAsyncStub,
    sha256: str,
    *,
    metadata: tuple[tuple[str, str], ...],
    timeout_s: float,
) -> bytes:
    """The module's bytes, sha256-verified; ModuleFetchError otherwise."""
    return (await fetch_signed_module(stub, sha256, metadata=metadata, timeout_s=timeout_s)).data


async def fetch_signed_module(
    stub: modules_pb2_grpc.ModuleServiceAsyncStub,
    sha256: str,
    *,
    metadata: tuple[tuple[str, str], ...],
    timeout_s: float,
) -> FetchedModule:
    """The module's bytes, sha256-verified, with its signatures; ModuleFetchError otherwise."""
    data = bytearray()
    signatures: tuple[common_pb2.ModuleSignature, ...] = ()
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
            signatures += tuple(chunk.signatures)
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
    return FetchedModule(data=bytes(data), signatures=signatures)
