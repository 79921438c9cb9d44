"""gRPC adapters for modules, apps and deployments: translate messages, call the registries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from control_plane.apps import AppRegistry, UsageCheck
from control_plane.auth import TokenTable
from control_plane.errors import ControlPlaneError, InvalidRequestError, ModuleRejectedError
from control_plane.fleet import Fleet
from control_plane.grpc_errors import abort_with, mapped
from control_plane.modules import (
    MAX_MODULE_BYTES,
    ModuleRegistry,
    check_digest,
    check_upload,
    wire_signatures,
)
from control_plane.records import ModuleRecord
from control_plane.rollouts.driver import RolloutDriver
from control_plane.rollouts.errors import ActionRefusedError
from control_plane.rollouts.model import ActionKind
from control_plane.rollouts.service import caller
from protos.edgecdn.v1 import (
    apps_pb2,
    apps_pb2_grpc,
    deployments_pb2,
    deployments_pb2_grpc,
    modules_pb2,
    modules_pb2_grpc,
)

Context = grpc.aio.ServicerContext[Any, Any]
UPLOAD_IDLE_TIMEOUT_S = 30.0
CHUNK_BYTES = 256 * 1024
WATCH_MIN_INTERVAL_S = 0.05


def module_info(record: ModuleRecord, used_by: tuple[str, ...]) -> modules_pb2.ModuleInfo:
    info = modules_pb2.ModuleInfo(
        sha256=record.sha256,
        name=record.name,
        size_bytes=record.size_bytes,
        abi=record.abi,  # type: ignore[arg-type]
        used_by=used_by,
        imports=record.imports,
        signatures=wire_signatures(record.signatures),
    )
    stamp = Timestamp()
    stamp.FromNanoseconds(int(record.created_at * 1e9))
    info.created_at.CopyFrom(stamp)
    return info


async def _receive_upload(
    requests: AsyncIterator[modules_pb2.UploadModuleRequest],
) -> tuple[modules_pb2.ModuleUploadHeader, bytes]:
    first = await asyncio.wait_for(anext(requests, None), UPLOAD_IDLE_TIMEOUT_S)
    if first is None or first.WhichOneof("part") != "header":
        raise InvalidRequestError(field="header", reason="the first message of an upload must be the header")
    header = first.header
    check_digest(header.sha256, field="header.sha256")
    if header.size_bytes > MAX_MODULE_BYTES:
        raise ModuleRejectedError(
            code="too_large", reason=f"modules are limited to {MAX_MODULE_BYTES} bytes", sha256=header.sha256
        )
    data = bytearray()
    while True:
        part = await asyncio.wait_for(anext(requests, None), UPLOAD_IDLE_TIMEOUT_S)
        if part is None:
            break
        if part.WhichOneof("part") != "chunk":
            raise InvalidRequestError(field="header", reason="only the first message may be a header")
        data += part.chunk
        if len(data) > header.size_bytes:
            raise ModuleRejectedError(
                code="size_mismatch",
                reason=f"more than the announced {header.size_bytes} bytes arrived",
                sha256=header.sha256,
            )
    check_upload(expected_sha256=header.sha256, expected_size=header.size_bytes, data=bytes(data))
    return header, bytes(data)


class ModuleServicer(modules_pb2_grpc.ModuleServiceServicer):
    def __init__(self, modules: ModuleRegistry) -> None:
        self._modules = modules

    async def UploadModule(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[modules_pb2.UploadModuleRequest], context: Context
    ) -> modules_pb2.ModuleInfo:
        try:
            header, data = await _receive_upload(request_iterator)
            record = await self._modules.add(
                name=header.name, sha256=header.sha256, abi=header.abi, data=data,
                signatures=header.signatures,
            )  # fmt: skip
        except ControlPlaneError as exc:
            await abort_with(context, exc)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "upload stalled: no data for 30 s")
        return module_info(record, self._modules.used_by(record.sha256))

    async def DownloadModule(  # noqa: N802 - gRPC method name
        self, request: modules_pb2.DownloadModuleRequest, context: Context
    ) -> AsyncIterator[modules_pb2.ModuleChunk]:
        try:
            served = self._modules.served(request.sha256)
        except ControlPlaneError as exc:
            await abort_with(context, exc)
        data, signatures = served.data, served.signatures
        total = len(data)
        first = min(request.offset, total)
        for offset in range(first, total, CHUNK_BYTES):
            yield modules_pb2.ModuleChunk(
                data=data[offset : offset + CHUNK_BYTES], offset=offset, total_size=total,
                signatures=signatures if offset == first else (),
            )  # fmt: skip
        if total == 0 or request.offset >= total:
            yield modules_pb2.ModuleChunk(data=b"", offset=total, total_size=total, signatures=signatures)

    @mapped
    async def ListModules(  # noqa: N802 - gRPC method name
        self, request: modules_pb2.ListModulesRequest, context: Context
    ) -> modules_pb2.ListModulesResponse:
        return modules_pb2.ListModulesResponse(
            modules=[module_info(r, self._modules.used_by(r.sha256)) for r in self._modules.list()]
        )

    @mapped
    async def DeleteModule(  # noqa: N802 - gRPC method name
        self, request: modules_pb2.DeleteModuleRequest, context: Context
    ) -> modules_pb2.DeleteModuleResponse:
        self._modules.delete(request.sha256)
        return modules_pb2.DeleteModuleResponse(sha256=request.sha256)


class AppServicer(apps_pb2_grpc.AppServiceServicer):
    def __init__(self, apps: AppRegistry, usage: UsageCheck) -> None:
        self._apps = apps
        self._usage = usage

    @mapped
    async def RegisterApp(  # noqa: N802 - gRPC method name
        self, request: apps_pb2.RegisterAppRequest, context: Context
    ) -> apps_pb2.AppVersion:
        return await self._apps.register(request.app)

    @mapped
    async def RemoveApp(  # noqa: N802 - gRPC method name
        self, request: apps_pb2.RemoveAppRequest, context: Context
    ) -> apps_pb2.RemoveAppResponse:
        collected = self._apps.remove(request.name, request.version, users=self._usage)
        return apps_pb2.RemoveAppResponse(
            name=request.name, version=request.version, removed_modules=collected
        )

    @mapped
    async def ListApps(  # noqa: N802 - gRPC method name
        self, request: apps_pb2.ListAppsRequest, context: Context
    ) -> apps_pb2.ListAppsResponse:
        return apps_pb2.ListAppsResponse(apps=self._apps.list())

    @mapped
    async def GetApp(  # noqa: N802 - gRPC method name
        self, request: apps_pb2.GetAppRequest, context: Context
    ) -> apps_pb2.AppVersion:
        return self._apps.get(request.name, request.version or None)


class DeploymentServicer(deployments_pb2_grpc.DeploymentServiceServicer):
    def __init__(self, fleet: Fleet, rollouts: RolloutDriver, tokens: TokenTable) -> None:
        self._fleet = fleet
        self._rollouts = rollouts
        self._tokens = tokens

    @mapped
    async def Deploy(  # noqa: N802 - gRPC method name
        self, request: deployments_pb2.DeployRequest, context: Context
    ) -> deployments_pb2.Deployment:
        # A one-shot deploy never races a rollout of the same app: refused, or (--force) the
        # rollout is aborted first and rolls back before this assignment is made.
        active = self._rollouts.active_for(request.app_name)
        if active is not None:
            if not request.force:
                raise ActionRefusedError(
                    rollout_id=active.id,
                    state=active.state.value,
                    action="deploy",
                    reason=f"{request.app_name} is being rolled out; wait, abort it, or deploy --force",
                )
            self._rollouts.act(
                active.id,
                ActionKind.ABORT,
                actor=caller(context, self._tokens),
                reason="edgectl deploy --force",
            )
        self._rollouts.check_regions(request.target.regions, allow_empty=request.allow_empty, field="target")
        deployment_id = self._fleet.deploy(
            app_name=request.app_name, app_version=request.app_version, selector=request.target
        )
        return self._fleet.deployment(deployment_id)

    @mapped
    async def GetDeployment(  # noqa: N802 - gRPC method name
        self, request: deployments_pb2.GetDeploymentRequest, context: Context
    ) -> deployments_pb2.Deployment:
        return self._fleet.deployment(request.id)

    async def WatchDeployment(  # noqa: N802 - gRPC method name
        self, request: deployments_pb2.GetDeploymentRequest, context: Context
    ) -> AsyncIterator[deployments_pb2.Deployment]:
        last: deployments_pb2.Deployment | None = None
        while True:
            # Take the change event before rendering so no change between the two is missed.
            changed = self._fleet.change_event()
            try:
                current = self._fleet.deployment(request.id)
            except ControlPlaneError as exc:
                await abort_with(context, exc)
            if current != last:
                yield current
                last = current
            if current.done:
                return
            await changed.wait()
            # Coalesce bursts (a thousand ACKs) into a few renders a second.
            await asyncio.sleep(WATCH_MIN_INTERVAL_S)
