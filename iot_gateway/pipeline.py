"""A batch of readings through the wasm telemetry module, and what comes out of it.

The module is a WAGI command: the batch is POSTed as the contract's readings array and the
answer must be ``200`` with a JSON object. Anything else (a trap, a broken limit, another
status, output that is not a JSON object) is a ``BatchError`` with a stable reason, which
the OTA policy counts against a module on probation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from iot_gateway.errors import BatchError
from iot_gateway.sensors import Reading
from wasm_host import (
    DeadlineExceededError,
    Handler,
    HandlerError,
    MemoryLimitError,
    OutputTooLargeError,
    WasmExecutor,
    WasmRequest,
    WasmTrapError,
)

HTTP_OK = 200
_HEADERS = (("content-type", "application/json"),)


def batch_body(readings: Sequence[Reading]) -> bytes:
    return json.dumps([r.to_json() for r in readings], separators=(",", ":")).encode()


def request_of(body: bytes) -> WasmRequest:
    return WasmRequest(
        method="POST", path="/telemetry", headers=_HEADERS, body=body, matched_route="/telemetry"
    )


def _reason(exc: HandlerError) -> str:
    if isinstance(exc, DeadlineExceededError):
        return "deadline"
    if isinstance(exc, MemoryLimitError):
        return "memory"
    if isinstance(exc, OutputTooLargeError):
        return "output"
    if isinstance(exc, WasmTrapError):
        return "trap"
    return "module_error"


def parse_result(status: int, body: bytes) -> dict[str, Any]:
    """The module's result object; BatchError("output") when it wrote something else."""
    if status != HTTP_OK:
        raise BatchError(reason="output", detail=f"status {status}: {body[:200]!r}")
    try:
        result = json.loads(body)
    except ValueError as exc:
        raise BatchError(reason="output", detail=f"not JSON: {exc}") from None
    if not isinstance(result, dict):
        raise BatchError(reason="output", detail="not a JSON object")
    return result


async def run_batch(executor: WasmExecutor, handler: Handler, body: bytes) -> dict[str, Any]:
    """Run one batch (``batch_body``) through ``handler``."""
    try:
        response = await executor.handle(handler, request_of(body))
    except HandlerError as exc:
        raise BatchError(reason=_reason(exc), detail=str(exc)) from exc
    return parse_result(response.status, response.body)


def alerts_of(result: dict[str, Any], threshold: float) -> list[tuple[str, float, int]]:
    """Per sensor that warned: (sensor, highest value, how many readings warned).

    One alert per sensor and batch, not per reading: a heat wave must not flood the broker.
    """
    warnings = result.get("warnings")
    if not isinstance(warnings, list):
        return []
    worst: dict[str, tuple[float, int]] = {}
    for item in warnings:
        if not isinstance(item, dict):
            continue
        sensor, value = item.get("sensor"), item.get("value")
        if not isinstance(sensor, str) or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value <= threshold:
            continue
        high, count = worst.get(sensor, (float(value), 0))
        worst[sensor] = (max(high, float(value)), count + 1)
    return [(sensor, high, count) for sensor, (high, count) in worst.items()]
