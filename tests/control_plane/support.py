"""Test support: an in-process control plane on a free port, real wasm modules, small clients."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import wasmtime

from control_plane.config import ControlPlaneConfig
from control_plane.server import run
from cpclient import auth_metadata
from protos.edgecdn.v1 import apps_pb2, common_pb2, modules_pb2, modules_pb2_grpc

# A WAGI command: exports _start and prints nothing; valid for the control plane and nodes.
WAT_WAGI = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start"))
)"""
# Compiles fine but is no WAGI command (no _start): a node refuses it at apply time.
WAT_NO_START = '(module (memory (export "memory") 1) (func (export "other")))'


def wasm(wat: str) -> bytes:
    return bytes(wasmtime.wat2wasm(wat))


def padded_wasm(size: int, marker: int = 0) -> bytes:
    """A valid module of about ``size`` bytes (a data segment pads it); ``marker`` varies the digest."""
    filler = "\\00" * max(size - 64, 0)
    return wasm(f'(module (memory 4) (data (i32.const {marker}) "{filler}") (func (export "_start")))')


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveControlPlane:
    address: str
    data_dir: Path
    tokens: Mapping[str, str]

    def md(self, role: str) -> tuple[tuple[str, str], ...]:
        return auth_metadata(self.tokens[role])


@asynccontextmanager
async def control_plane_in_process(data_dir: Path, **overrides: Any) -> AsyncIterator[LiveControlPlane]:
    """Run ``control_plane.server.run`` in this event loop until the block ends."""
    config = ControlPlaneConfig(data_dir=data_dir, grace_seconds=0.5, **overrides)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run(config, ready=lambda addresses: ready.set_result(addresses["grpc"]), stop=stop), name="test-cp"
    )
    try:
        waiters: list[asyncio.Future[Any]] = [ready, task]
        done, _ = await asyncio.wait(waiters, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        address = ready.result()
        tokens = json.loads((data_dir / "tokens.json").read_text()) if config.tokens_file is None else {}
        yield LiveControlPlane(address=address, data_dir=data_dir, tokens=tokens)
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def upload(
    channel: grpc.aio.Channel,
    metadata: tuple[tuple[str, str], ...],
    data: bytes,
    *,
    name: str = "m",
    digest: str | None = None,
    size: int | None = None,
    chunk: int = 64 * 1024,
) -> modules_pb2.ModuleInfo:
    async def parts() -> AsyncIterator[modules_pb2.UploadModuleRequest]:
        header = modules_pb2.ModuleUploadHeader(
            name=name, sha256=digest or sha(data), size_bytes=len(data) if size is None else size
        )
        yield modules_pb2.UploadModuleRequest(header=header)
        for offset in range(0, len(data), chunk):
            yield modules_pb2.UploadModuleRequest(chunk=data[offset : offset + chunk])

    stub = modules_pb2_grpc.ModuleServiceStub(channel)
    return await stub.UploadModule(parts(), metadata=metadata, timeout=20)


def app_version(name: str, version: str, modules: Mapping[str, str]) -> apps_pb2.AppVersion:
    """An app with one route per module: ``/<module name>`` -> that module."""
    return apps_pb2.AppVersion(
        name=name,
        version=version,
        routes=[apps_pb2.Route(path=f"/{module}", module=module) for module in modules],
        modules=[
            apps_pb2.ModuleRef(name=module, sha256=digest, abi=common_pb2.ABI_WAGI, memory_bytes=1 << 20)
            for module, digest in modules.items()
        ],
    )
