"""Batches through the real sensor-stats module, and how results and failures are read."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from iot_gateway.errors import BatchError
from iot_gateway.pipeline import alerts_of, batch_body, parse_result, run_batch
from iot_gateway.sensors import Reading
from tests.iot_gateway.support import SENSOR_STATS
from wasm_host import ExecutorConfig, Handler, ModuleCache, WasmEngine, WasmExecutor, create_handler


@pytest.fixture(scope="module")
def handler() -> Iterator[Handler]:
    engine = WasmEngine()
    yield create_handler(engine, ModuleCache(engine).load_file(SENSOR_STATS), env={"WARNING_ABOVE_C": "30"})
    engine.close()


def readings(*temperatures: float) -> list[Reading]:
    hot = [Reading(sensor="temperature", value=t, unit="C", ts=100.0 + i) for i, t in enumerate(temperatures)]
    return [*hot, Reading(sensor="humidity", value=40.0, unit="%", ts=100.0)]


async def test_sensor_stats_summarises_a_batch(handler: Handler) -> None:
    executor = WasmExecutor(ExecutorConfig(mode="inline"))
    result = await run_batch(executor, handler, batch_body(readings(20.0, 31.5, 33.0)))
    assert result["sensors"]["temperature"] == {"count": 3, "avg": 28.17, "min": 20, "max": 33, "unit": "C"}
    assert result["sensors"]["humidity"]["count"] == 1
    assert result["warnings_total"] == 2
    assert alerts_of(result, 30.0) == [("temperature", 33.0, 2)]
    executor.close()


async def test_contract_readings_are_checked(handler: Handler) -> None:
    executor = WasmExecutor(ExecutorConfig(mode="inline"))
    bad = json.dumps([{"sensor": "temperature", "value": "hot", "unit": "C", "ts": 1}]).encode()
    with pytest.raises(BatchError) as raised:
        await run_batch(executor, handler, bad)
    assert raised.value.reason == "output"
    assert "must be a number" in raised.value.detail
    executor.close()


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [(500, b"{}", "status 500"), (200, b"nope", "not JSON"), (200, b"[1]", "not a JSON object")],
)
def test_output_that_is_not_a_result_is_refused(status: int, body: bytes, detail: str) -> None:
    with pytest.raises(BatchError, match=detail):
        parse_result(status, body)


def test_alerts_ignore_junk_and_readings_below_the_threshold() -> None:
    result = {
        "warnings": [
            {"sensor": "t", "value": 29},
            {"sensor": 1, "value": 40},
            "x",
            {"sensor": "t", "value": True},
        ]
    }
    assert alerts_of(result, 30.0) == []
    assert alerts_of({"warnings": "none"}, 30.0) == []
