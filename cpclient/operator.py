"""The operator's async client of the control plane: one channel, the bearer token, a
deadline on every call. Used by ``edgectl`` and by ``edgecdn up`` (which registers and
deploys the local world's app through the same API an operator uses).

gRPC failures become ``ControlPlaneCallError`` with a message an operator can act on; this
module is the only place that knows status codes.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cpclient.apps import ABIS, app_from_manifest
from cpclient.channel import TlsSettings, auth_metadata, open_channel
from cpclient.errors import ControlPlaneCallError
from manifest import AppManifest
from protos.edgecdn.v1 import (
    apps_pb2,
    apps_pb2_grpc,
    common_pb2,
    deployments_pb2,
    deployments_pb2_grpc,
    modules_pb2,
    modules_pb2_grpc,
    nodes_pb2,
    nodes_pb2_grpc,
    rollouts_pb2,
    rollouts_pb2_grpc,
    traces_pb2,
    traces_pb2_grpc,
)
from runtime.signing import SigningKey, sign_digest

T = TypeVar("T")
CALL_TIMEOUT_S = 10.0
UPLOAD_CHUNK = 512 * 1024


def describe_rpc_error(exc: grpc.aio.AioRpcError, server: str) -> str:  # noqa: PLR0911 - one per code
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        first_line = details.splitlines()[0] if details else "unavailable"
        return f"cannot reach the control plane at {server} ({first_line})"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"authentication failed: {details}"
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return f"permission denied: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the control plane at {server} did not answer in time"
    if code in (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
    ):
        return details
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return f"rejected: {details}"
    return f"{code.name.lower()}: {details}"


class OperatorClient:
    """Typed calls to the control-plane services an operator uses."""

    def __init__(self, server: str, token: str, tls: TlsSettings | None = None) -> None:
        self.server = server
        self._channel = open_channel(server, tls)
        self._md = auth_metadata(token)
        self.modules = modules_pb2_grpc.ModuleServiceStub(self._channel)
        self.apps = apps_pb2_grpc.AppServiceStub(self._channel)
        self.deployments = deployments_pb2_grpc.DeploymentServiceStub(self._channel)
        self.nodes = nodes_pb2_grpc.NodeServiceStub(self._channel)
        self.health = health_pb2_grpc.HealthStub(self._channel)
        self.traces = traces_pb2_grpc.TraceQueryServiceStub(self._channel)
        self.rollouts = rollouts_pb2_grpc.RolloutServiceStub(self._channel)

    async def __aenter__(self) -> OperatorClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._channel.close()

    def _error(self, exc: grpc.aio.AioRpcError) -> ControlPlaneCallError:
        return ControlPlaneCallError(describe_rpc_error(exc, self.server), code=exc.code().name)

    async def push_module(
        self,
        data: bytes,
        *,
        name: str,
        abi: common_pb2.Abi.ValueType,
        progress: Callable[[int], None],
        sign: SigningKey | None = None,
    ) -> modules_pb2.ModuleInfo:
        """Upload a module; with ``sign``, with that key's signature of its digest."""
        sha256 = hashlib.sha256(data).hexdigest()
        header = modules_pb2.ModuleUploadHeader(name=name, sha256=sha256, size_bytes=len(data), abi=abi)
        if sign is not None:
            signature = sign_digest(sign, sha256)
            header.signatures.add(
                key_id=signature.key_id, public_key=signature.public_key, signature=signature.signature
            )

        async def parts() -> AsyncIterator[modules_pb2.UploadModuleRequest]:
            yield modules_pb2.UploadModuleRequest(header=header)
            for offset in range(0, len(data), UPLOAD_CHUNK):
                chunk = data[offset : offset + UPLOAD_CHUNK]
                yield modules_pb2.UploadModuleRequest(chunk=chunk)
                progress(len(chunk))

        try:
            return await self.modules.UploadModule(parts(), metadata=self._md, timeout=120)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def list_modules(self) -> list[modules_pb2.ModuleInfo]:
        try:
            response = await self.modules.ListModules(
                modules_pb2.ListModulesRequest(), metadata=self._md, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        return list(response.modules)

    async def delete_module(self, sha256: str) -> None:
        try:
            await self.modules.DeleteModule(
                modules_pb2.DeleteModuleRequest(sha256=sha256), metadata=self._md, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def register_app(self, app: apps_pb2.AppVersion) -> apps_pb2.AppVersion:
        try:
            return await self.apps.RegisterApp(
                apps_pb2.RegisterAppRequest(app=app), metadata=self._md, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def remove_app(self, name: str, version: str) -> apps_pb2.RemoveAppResponse:
        """Remove ``name@version`` (refused while deployed or in a rollout); the modules it
        took with it are in ``removed_modules``."""
        try:
            return await self.apps.RemoveApp(
                apps_pb2.RemoveAppRequest(name=name, version=version),
                metadata=self._md,
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def list_apps(self) -> list[apps_pb2.AppSummary]:
        try:
            response = await self.apps.ListApps(
                apps_pb2.ListAppsRequest(), metadata=self._md, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        return list(response.apps)

    async def get_app(self, name: str, version: str | None) -> apps_pb2.AppVersion:
        try:
            return await self.apps.GetApp(
                apps_pb2.GetAppRequest(name=name, version=version or ""),
                metadata=self._md,
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def deploy(
        self,
        name: str,
        version: str,
        target: common_pb2.Selector,
        *,
        force: bool = False,
        allow_empty: bool = False,
    ) -> deployments_pb2.Deployment:
        request = deployments_pb2.DeployRequest(
            app_name=name, app_version=version, target=target, force=force, allow_empty=allow_empty
        )
        try:
            return await self.deployments.Deploy(
                request,
                metadata=self._md,
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def watch_deployment(
        self, deployment_id: str, timeout_s: float
    ) -> AsyncIterator[deployments_pb2.Deployment]:
        call = self.deployments.WatchDeployment(
            deployments_pb2.GetDeploymentRequest(id=deployment_id), metadata=self._md, timeout=timeout_s
        )
        try:
            async for deployment in call:
                yield deployment
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ControlPlaneCallError(
                    f"deployment {deployment_id}: not every node answered within {timeout_s:g} s",
                    code=exc.code().name,
                ) from exc
            raise self._error(exc) from exc

    async def start_rollout(self, spec: rollouts_pb2.RolloutSpec) -> rollouts_pb2.Rollout:
        return await self._unary(self.rollouts.StartRollout, rollouts_pb2.StartRolloutRequest(spec=spec))

    async def get_rollout(self, rollout_id: str) -> rollouts_pb2.Rollout:
        return await self._unary(self.rollouts.GetRollout, rollouts_pb2.RolloutRef(id=rollout_id))

    async def list_rollouts(self, *, app: str = "", limit: int = 0) -> list[rollouts_pb2.Rollout]:
        response = await self._unary(
            self.rollouts.ListRollouts, rollouts_pb2.ListRolloutsRequest(app_name=app, limit=limit)
        )
        return list(response.rollouts)

    async def rollout_action(
        self, kind: str, rollout_id: str, *, reason: str = "", all_waves: bool = False
    ) -> rollouts_pb2.Rollout:
        """``kind``: pause, resume, promote or abort."""
        method = {
            "pause": self.rollouts.PauseRollout,
            "resume": self.rollouts.ResumeRollout,
            "promote": self.rollouts.PromoteRollout,
            "abort": self.rollouts.AbortRollout,
        }[kind]
        return await self._unary(
            method, rollouts_pb2.RolloutAction(id=rollout_id, reason=reason, all=all_waves)
        )

    async def watch_rollout(self, rollout_id: str) -> AsyncIterator[rollouts_pb2.RolloutEvent]:
        """The rollout now, then every change, until it ends (no deadline: it may take hours)."""
        call = self.rollouts.WatchRollout(rollouts_pb2.RolloutRef(id=rollout_id), metadata=self._md)
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def _unary(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await method(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def list_nodes(self) -> list[nodes_pb2.NodeInfo]:
        try:
            response = await self.nodes.ListNodes(
                nodes_pb2.ListNodesRequest(), metadata=self._md, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        return list(response.nodes)

    async def serving(self) -> bool:
        try:
            response = await self.health.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    async def list_traces(self, request: traces_pb2.ListTracesRequest) -> list[traces_pb2.TraceSummary]:
        try:
            response = await self.traces.ListTraces(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        return list(response.traces)

    async def get_trace(self, trace_id: str) -> traces_pb2.Trace:
        try:
            return await self.traces.GetTrace(
                traces_pb2.GetTraceRequest(trace_id=trace_id), metadata=self._md, timeout=CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def get_stats(self, request: traces_pb2.GetStatsRequest) -> traces_pb2.GetStatsResponse:
        try:
            return await self.traces.GetStats(request, metadata=self._md, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc


UploadFn = Callable[[bytes, str, str], Awaitable[object]]


async def publish_app(
    client: OperatorClient,
    manifest: AppManifest,
    *,
    upload: UploadFn | None = None,
    sign: SigningKey | None = None,
) -> apps_pb2.AppVersion:
    """Upload the modules of ``manifest`` the registry lacks (with ``sign``: also those it
    holds without that key's signature, pushed again signed), then register the app version.

    ``upload(data, name, abi)`` replaces the plain upload (edgectl shows a progress bar; it
    signs by itself).
    """
    app, blobs = app_from_manifest(manifest)
    known = {
        module.sha256
        for module in await client.list_modules()
        if sign is None or any(s.key_id == sign.key_id for s in module.signatures)
    }

    async def push(digests: Iterable[str]) -> None:
        for digest in digests:
            name, abi, data = blobs[digest]
            if upload is not None:
                await upload(data, name, abi)
            else:
                await client.push_module(data, name=name, abi=ABIS[abi], progress=lambda _: None, sign=sign)

    await push(d for d in blobs if d not in known)
    try:
        return await client.register_app(app)
    except ControlPlaneCallError as exc:
        # A module listed as known may have been collected since (the last app version
        # using it removed meanwhile): push every module once more, then register again.
        if exc.code != "INVALID_ARGUMENT" or "push it first" not in exc.message:
            raise
    await push(blobs)
    return await client.register_app(app)
