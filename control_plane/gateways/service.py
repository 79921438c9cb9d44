"""GatewayService adapters: proto <-> coordinator, and coordinator errors -> gRPC status codes.

Without ``--mqtt`` the control plane serves ``UnconfiguredGatewayServicer``: every call is
FAILED_PRECONDITION with a clear message rather than UNIMPLEMENTED.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from google.protobuf import struct_pb2

from control_plane.gateways.commands import CommandSpec, GatewayResult, Targets
from control_plane.gateways.coordinator import Coordinator
from control_plane.gateways.errors import (
    BrokerUnavailableError,
    GatewayError,
    InvalidCommandError,
    NoGatewaysMatchError,
    UnknownGatewaysError,
    UnknownModuleError,
)
from control_plane.gateways.registry import Gateway
from protos.edgecdn.v1 import gateways_pb2, gateways_pb2_grpc

NO_BROKER = "no MQTT broker configured (--mqtt)"
Context = grpc.aio.ServicerContext[Any, Any]
_CODES: tuple[tuple[type[GatewayError], grpc.StatusCode], ...] = (
    (InvalidCommandError, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownGatewaysError, grpc.StatusCode.NOT_FOUND),
    (NoGatewaysMatchError, grpc.StatusCode.NOT_FOUND),
    (UnknownModuleError, grpc.StatusCode.FAILED_PRECONDITION),
    (BrokerUnavailableError, grpc.StatusCode.UNAVAILABLE),
)


class UnconfiguredGatewayServicer(gateways_pb2_grpc.GatewayServiceServicer):
    """Served when the control plane runs without ``--mqtt``: a clear refusal, not UNIMPLEMENTED."""

    async def ListGateways(  # noqa: N802 (gRPC method name)
        self, request: gateways_pb2.ListGatewaysRequest, context: Context
    ) -> gateways_pb2.ListGatewaysResponse:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_BROKER)

    async def SendGatewayCommand(  # noqa: N802 (gRPC method name)
        self, request: gateways_pb2.GatewayCommandRequest, context: Context
    ) -> gateways_pb2.GatewayCommandResponse:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_BROKER)

    async def StreamGatewayCommand(  # noqa: N802 (gRPC method name)
        self, request: gateways_pb2.GatewayCommandRequest, context: Context
    ) -> AsyncIterator[gateways_pb2.GatewayCommandProgress]:
        for _ in ():  # an async generator, as the streaming method must be, that yields nothing
            yield gateways_pb2.GatewayCommandProgress()
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_BROKER)


class GatewayServicer(gateways_pb2_grpc.GatewayServiceServicer):
    """The live service over a running coordinator."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator

    async def ListGateways(  # noqa: N802 (gRPC method name)
        self, request: gateways_pb2.ListGatewaysRequest, context: Context
    ) -> gateways_pb2.ListGatewaysResponse:
        coordinator = self._coordinator
        return gateways_pb2.ListGatewaysResponse(
            gateways=[gateway_info(g) for g in coordinator.gateways(request.regions)],
            refused_by_reason=coordinator.refused_by_reason(),
            broker_connected=coordinator.connected,
        )

    async def SendGatewayCommand(  # noqa: N802 (gRPC method name)
        self, request: gateways_pb2.GatewayCommandRequest, context: Context
    ) -> gateways_pb2.GatewayCommandResponse:
        try:
            dispatch = await self._coordinator.dispatch(*from_request(request))
        except GatewayError as exc:
            await _abort(context, exc)
        by_id = {result.gateway_id: result async for result in dispatch.results}
        return gateways_pb2.GatewayCommandResponse(
            command_id=dispatch.command_id,
            gateway_ids=[g.gateway_id for g in dispatch.gateways],
            results=[result_message(by_id[g.gateway_id]) for g in dispatch.gateways],
        )

    async def StreamGatewayCommand(  # noqa: N802 (gRPC method name)
        self, request: gateways_pb2.GatewayCommandRequest, context: Context
    ) -> AsyncIterator[gateways_pb2.GatewayCommandProgress]:
        try:
            dispatch = await self._coordinator.dispatch(*from_request(request))
        except GatewayError as exc:
            await _abort(context, exc)
        started = gateways_pb2.GatewayCommandResponse(
            command_id=dispatch.command_id, gateway_ids=[g.gateway_id for g in dispatch.gateways]
        )
        yield gateways_pb2.GatewayCommandProgress(started=started)
        async for result in dispatch.results:
            yield gateways_pb2.GatewayCommandProgress(result=result_message(result))


async def _abort(context: Context, exc: GatewayError) -> NoReturn:
    code = next((code for kind, code in _CODES if isinstance(exc, kind)), grpc.StatusCode.INTERNAL)
    await context.abort(code, str(exc))
    raise AssertionError("unreachable")  # pragma: no cover - abort raises


def from_request(request: gateways_pb2.GatewayCommandRequest) -> tuple[CommandSpec, Targets, float]:
    """The command, its targets and its deadline (0: the default); the rules are checked in
    ``commands`` (one place for the service and the rollout engine), not here."""
    which = request.WhichOneof("command")
    if which == "update_module":
        command = CommandSpec(kind="update_module", sha256=request.update_module.sha256)
    elif which == "set_sample_interval":
        interval = request.set_sample_interval.interval
        command = CommandSpec(kind="set_interval", interval_s=interval.seconds + interval.nanos / 1e9)
    elif which == "ping":
        command = CommandSpec(kind="ping")
    else:
        raise InvalidCommandError(field="command", reason="set update_module, set_sample_interval or ping")
    target = request.target
    targets = Targets(
        gateway_ids=tuple(target.node_ids),
        regions=tuple(target.regions),
        labels=dict(request.labels),
        all=target.all,
    )
    deadline = request.deadline
    return command, targets, deadline.seconds + deadline.nanos / 1e9


def result_message(result: GatewayResult) -> gateways_pb2.GatewayCommandResult:
    message = gateways_pb2.GatewayCommandResult(
        gateway_id=result.gateway_id,
        region=result.region,
        ok=result.ok,
        message=result.message,
        timed_out=result.timed_out,
    )
    if result.status:
        status = struct_pb2.Struct()
        status.update(dict(result.status))
        message.status.CopyFrom(status)
    message.elapsed.FromNanoseconds(round(result.elapsed_s * 1e9))
    return message


def gateway_info(gateway: Gateway) -> gateways_pb2.GatewayInfo:
    info = gateways_pb2.GatewayInfo(
        gateway_id=gateway.gateway_id,
        region=gateway.region,
        online=gateway.online,
        module_sha256=gateway.module_sha256,
        sensors=gateway.sensors,
        readings_total=gateway.readings_total,
        alerts_total=max(gateway.alerts_total, gateway.alerts_received),
        labels=dict(gateway.labels),
        offline_reason=gateway.offline_reason,
        module_errors_total=gateway.module_errors_total,
        rollbacks_total=gateway.rollbacks_total,
        last_error=gateway.last_error,
        module_name=gateway.module_name,
        results_received=gateway.results_received,
        alerts_received=gateway.alerts_received,
    )
    if gateway.last_seen:
        info.last_seen.FromNanoseconds(round(gateway.last_seen * 1e9))
    info.interval.FromNanoseconds(round(gateway.interval_s * 1e9))
    return info
