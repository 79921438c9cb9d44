"""Handlers wrapped once per method: the cache returns the same wrapping for the same (method,
handler), a new one for another handler, and stays bounded; the refusal of a known method is
built once too. That every call is still counted, refused and traced is shown over real gRPC
(test_metrics.py, test_auth*.py, test_traces_receiver.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from control_plane.grpc_handlers import Handler, HandlerCache, outcome_code


async def behaviour(request: Any, context: Any) -> Any:
    return request


def handler() -> Handler:
    made: Handler = grpc.unary_unary_rpc_method_handler(behaviour)
    return made


def test_a_method_is_wrapped_once_per_handler() -> None:
    cache = HandlerCache()
    wraps: list[Handler] = []

    def wrap(source: Handler) -> Handler:
        wraps.append(source)
        return handler()

    first, second = handler(), handler()
    wrapped = cache.wrapped("/s/M", first, wrap)
    assert cache.wrapped("/s/M", first, wrap) is wrapped
    assert wraps == [first]
    other = cache.wrapped("/s/M", second, wrap)  # another handler of the method (a refusal, say)
    assert other is not wrapped
    assert cache.wrapped("/s/M", first, wrap) is wrapped
    assert cache.wrapped("/s/N", first, wrap) is not wrapped  # the wrapping may name its method
    assert wraps == [first, second, first]


def test_the_cache_is_bounded() -> None:
    cache = HandlerCache(limit=3)
    source = handler()
    for number in range(10):  # a caller probing method names
        cache.wrapped(f"/probe/{number}", source, lambda found: found)
        assert len(cache) <= 3


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (None, grpc.StatusCode.OK),
        (asyncio.CancelledError(), grpc.StatusCode.CANCELLED),
        # A streaming handler closed after its call ended without it (StreamClosingInterceptor).
        (GeneratorExit(), grpc.StatusCode.CANCELLED),
        (RuntimeError("boom"), grpc.StatusCode.UNKNOWN),
    ],
)
def test_a_call_ends_with_the_code_its_error_means(
    error: BaseException | None, code: grpc.StatusCode
) -> None:
    assert outcome_code(object(), error) == code
