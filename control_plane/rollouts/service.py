"""``RolloutService`` (rollouts.proto) over the rollout driver: the gRPC adapter.

Who may call what is the auth table's business (viewers may read and watch; operators may
also act); each action is recorded with the caller's token name and role.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from control_plane.auth import TokenTable, bearer_token
from control_plane.errors import ControlPlaneError
from control_plane.grpc_errors import abort_with, mapped
from control_plane.rollouts.driver import RolloutDriver
from control_plane.rollouts.model import ActionKind, Rollout
from control_plane.rollouts.wire import rollout_to_wire, spec_from_wire
from protos.edgecdn.v1 import rollouts_pb2, rollouts_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def caller(context: Context, tokens: TokenTable) -> str:
    """The caller as the rollout's history names it: ``alice (operator)``."""
    metadata = dict(context.invocation_metadata() or ())
    raw = metadata.get("authorization")
    token = bearer_token(raw if isinstance(raw, str) else None)
    principal = tokens.lookup(token) if token else None
    return "unknown" if principal is None else f"{principal.name} ({principal.role})"


class RolloutServicer(rollouts_pb2_grpc.RolloutServiceServicer):
    def __init__(self, driver: RolloutDriver, tokens: TokenTable, clock: Callable[[], float]) -> None:
        self._driver = driver
        self._tokens = tokens
        self._clock = clock

    def _wire(self, rollout: Rollout) -> rollouts_pb2.Rollout:
        return rollout_to_wire(rollout, self._clock())

    @mapped
    async def StartRollout(  # noqa: N802 - gRPC method name
        self, request: rollouts_pb2.StartRolloutRequest, context: Context
    ) -> rollouts_pb2.Rollout:
        spec = spec_from_wire(request.spec, self._driver.known_regions())
        return self._wire(self._driver.start(spec, allow_empty=request.spec.allow_empty))

    @mapped
    async def GetRollout(  # noqa: N802 - gRPC method name
        self, request: rollouts_pb2.RolloutRef, context: Context
    ) -> rollouts_pb2.Rollout:
        return self._wire(self._driver.get(request.id))

    @mapped
    async def ListRollouts(  # noqa: N802 - gRPC method name
        self, request: rollouts_pb2.ListRolloutsRequest, context: Context
    ) -> rollouts_pb2.ListRolloutsResponse:
        found = self._driver.list_rollouts(app=request.app_name, limit=request.limit)
        return rollouts_pb2.ListRolloutsResponse(rollouts=[self._wire(r) for r in found])

    async def WatchRollout(  # noqa: N802 - gRPC method name
        self, request: rollouts_pb2.RolloutRef, context: Context
    ) -> AsyncIterator[rollouts_pb2.RolloutEvent]:
        try:
            async for change in self._driver.watch(request.id):
                yield rollouts_pb2.RolloutEvent(rollout=self._wire(change.rollout), event=change.event)
        except ControlPlaneError as exc:  # an unknown id
            await abort_with(context, exc)

    async def _act(
        self, request: rollouts_pb2.RolloutAction, context: Context, kind: ActionKind
    ) -> rollouts_pb2.Rollout:
        rollout = self._driver.act(
            request.id, kind, actor=caller(context, self._tokens), reason=request.reason
        )
        return self._wire(rollout)

    @mapped
    async def PauseRollout(  # noqa: N802 - gRPC method name
        self, request: rollouts_pb2.RolloutAction, context: Context
    ) -> rollouts_pb2.Rollout:
        return await self._act(request, context, ActionKind.PAUSE)

    @mapped
    async def ResumeRollout(  # noqa: N802 - gRPC method name
        self, request: rollouts_pb2.RolloutAction, context: Context
    ) -> rollouts_pb2.Rollout:
        return await self._act(request, context, ActionKind.RESUME)

    @mapped
    async def PromoteRollout(  # noqa: N802 - gRPC method name
        self, request: rollouts_pb2.RolloutAction, context: Context
    ) -> rollouts_pb2.Rollout:
        return await self._act(
            request, context, ActionKind.PROMOTE_ALL if request.all else ActionKind.PROMOTE
        )

    @mapped
    async def AbortRollout(  # noqa: N802 - gRPC method name
        self, request: rollouts_pb2.RolloutAction, context: Context
    ) -> rollouts_pb2.Rollout:
        return await self._act(request, context, ActionKind.ABORT)
