"""The one place where control-plane errors become gRPC status codes and messages."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from control_plane.apps import AppInUseError
from control_plane.errors import (
    AppConflictError,
    ControlPlaneError,
    InvalidRequestError,
    ModuleInUseError,
    ModuleRejectedError,
    NotFoundError,
)
from control_plane.rollouts.errors import ActionRefusedError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def status_for(exc: ControlPlaneError) -> grpc.StatusCode:
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, InvalidRequestError | ModuleRejectedError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, ModuleInUseError | AppInUseError | ActionRefusedError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, AppConflictError):
        return grpc.StatusCode.ALREADY_EXISTS
    return grpc.StatusCode.INTERNAL


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], exc: ControlPlaneError) -> NoReturn:
    code = status_for(exc)
    if code == grpc.StatusCode.INTERNAL:
        logger.error("internal error: %s", exc)
    await context.abort(code, str(exc))
    raise AssertionError("unreachable")  # pragma: no cover - abort raises


def mapped(
    method: Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[T]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[T]]:
    """Decorate a servicer method so ControlPlaneError aborts the call with its status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> T:
        try:
            return await method(self, request, context)
        except ControlPlaneError as exc:
            await abort_with(context, exc)

    return wrapper
