"""Issue 24 follow-up: an exhausted wasm instance pool is the node being full for now, not
the handler failing. The client gets 503 ``instance_limit`` with ``retry-after: 1`` (and,
as for every failure inside the node, only the kind, a fixed sentence and the request id),
not 500 ``handler_failed``.
"""

from __future__ import annotations

import json
import time

from edge_node.cache_flow import EdgeCache
from edge_node.errors import HANDLER_MESSAGES, HandlerFailedError
from edge_node.geo_headers import NodeIdentity
from edge_node.http_adapter import EdgeHttpHandler
from edge_node.load import LoadTracker
from edge_node.metrics import EdgeMetrics
from edge_node.pipeline import CacheThrough, Exchange, ExecuteWasm, Pipeline
from httpcache.store import MemoryTier, TieredCache
from wasm_host.errors import HandlerError, InstanceLimitError, WasmTrapError
from wasm_host.executor import WasmExecutor

DIGEST = "cd" * 32
DETAIL = "maximum concurrent limit of 1000 for instances reached"


def test_an_exhausted_pool_is_a_503_the_client_may_retry() -> None:
    error = HandlerFailedError(InstanceLimitError(DETAIL), module="m", digest=DIGEST)
    assert (error.status, error.kind) == (503, "instance_limit")
    assert error.answer_headers == (("retry-after", "1"),)
    assert error.client_json("r") == {
        "error": "instance_limit",
        "message": HANDLER_MESSAGES["instance_limit"],
        "request_id": "r",
    }
    assert DETAIL in error.message  # for the node's log and the trace


def test_other_handler_failures_carry_no_retry_after() -> None:
    for cause in (WasmTrapError("unreachable"), HandlerError("x")):
        error = HandlerFailedError(cause, module="m", digest=DIGEST)
        assert error.status == 500
        assert error.answer_headers == ()


def test_the_adapter_answers_503_with_retry_after_and_the_request_id() -> None:
    metrics = EdgeMetrics()
    executor = WasmExecutor()
    try:
        handler = EdgeHttpHandler(
            pipeline=Pipeline(
                before_execute=(),
                execute_wasm=ExecuteWasm(executor=executor, metrics=metrics),
                through=CacheThrough(
                    cache=EdgeCache(
                        TieredCache(MemoryTier(max_bytes=1 << 20, max_entry_bytes=1 << 16), None),
                        clock=time.time,
                    ),
                    metrics=metrics,
                    origin=object(),  # type: ignore[arg-type]  # never reached: the request failed
                    run_wasm=object(),  # type: ignore[arg-type]
                ),
            ),
            node=NodeIdentity(node_id="eu-1-a", region="eu-1", pop="Paris"),
            metrics=metrics,
            load=LoadTracker(),
            admin={},
            max_body_bytes=1 << 16,
            current_app=lambda: None,
        )
        exchange = Exchange(method="GET", path="/m/busy", query="", headers=[], body=b"", peer="127.0.0.1")
        metrics.in_flight.inc()  # as _begin does for every request
        answer = handler._failed(  # the answer, without a server
            exchange, HandlerFailedError(InstanceLimitError(DETAIL), module="busy", digest=DIGEST)
        )
    finally:
        executor.close()
    assert answer.status == 503
    headers = {name.decode(): value.decode() for name, value in answer.headers}
    assert headers["retry-after"] == "1"
    body = json.loads(answer.body)
    assert body == {
        "error": "instance_limit",
        "message": HANDLER_MESSAGES["instance_limit"],
        "request_id": headers["x-request-id"],
    }
    assert DETAIL not in answer.body.decode()
    assert DIGEST not in answer.body.decode()
