"""The gateway process for real: a real broker (Mosquitto and amqtt), the real wasm module."""

from __future__ import annotations

import asyncio
import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from iotwire.link import traceparent_of
from iotwire.payloads import Command
from simulator.supervisor import Supervisor
from tests.iot_gateway.support import start_gateway, watching
from tests.mqtt_brokers import ENGINES, start_broker

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("engine", ENGINES)
async def test_presence_results_commands_and_last_will(
    supervisor: Supervisor, tmp_path: Path, engine: str
) -> None:
    broker = await start_broker(supervisor, tmp_path, engine)
    async with watching(broker) as watch:
        gateway = await start_gateway(
            supervisor, broker, tmp_path, "--label", "site=lab", "--label", "rack=7"
        )
        online = await watch.status("gw", lambda s: s["online"], "online")
        assert online["labels"] == {"site": "lab", "rack": "7"}
        assert online["module_name"] == "sensor-stats"

        result = (await watch.wait(lambda: watch.of("gw", "results"), "a batch's result"))[0]["result"]
        assert result["count"] == 8
        assert set(result["sensors"]) == {"temperature", "humidity"}
        assert {"count", "avg", "min", "max"} <= set(result["sensors"]["temperature"])

        ping = await watch.command("gw", Command(command_id="c-1", kind="ping"), traceparent=TRACEPARENT)
        assert (ping["ok"], ping["message"], ping["status"]["gateway_id"]) == (True, "pong", "gw")
        # The command's trace goes on with its result (v5 user property, or 3.1.1 payload key).
        _, body, message = next(seen for seen in watch.seen if seen[1].get("command_id") == "c-1")
        assert traceparent_of(message, body).split("-")[1] == TRACEPARENT.split("-")[1]
        interval = await watch.command("gw", Command(command_id="c-2", kind="set_interval", interval_s=0.1))
        assert interval["ok"]
        await watch.status("gw", lambda s: s.get("interval_s") == 0.1, "the new interval in the status")

        bad_commands = [
            ("", b"not json"),
            ("c-3", b'{"command_id":"c-3","kind":"reboot"}'),
            ("c-4", b'{"command_id":"c-4","kind":"update_module","sha256":"xyz"}'),
        ]
        for command_id, payload in bad_commands:
            await watch.raw_command("gw", payload)
            if command_id:
                bad = await watch.result("gw", command_id)
                assert not bad["ok"]
                assert bad["message"]
        async with aiohttp.ClientSession() as http:
            url = gateway.report.addresses["http"] + "/metrics"
            metrics = await (await http.get(url)).text()
        assert 'iot_gateway_refusals_total{reason="bad_command"} 3.0' in metrics

        gateway.process.kill()  # kill -9: the broker sends the last will
        offline = await watch.status("gw", lambda s: not s["online"], "offline by the last will")
        assert offline["reason"] == "connection lost"


async def test_heat_wave_alerts_and_graceful_stop(supervisor: Supervisor, tmp_path: Path) -> None:
    broker = await start_broker(supervisor, tmp_path, "mosquitto")
    async with watching(broker) as watch:
        gateway = await start_gateway(
            supervisor, broker, tmp_path, "--heat-wave", "0s,1h", "--sensors", "temperature"
        )
        alert = (await watch.wait(lambda: watch.of("gw", "alerts"), "an alert"))[0]
        assert alert["sensor"] == "temperature"
        assert alert["value"] > 30
        assert alert["threshold"] == 30
        result = watch.of("gw", "results")[0]["result"]
        assert result["warnings_total"] == 4
        gateway.process.terminate()
        stopped = await watch.status("gw", lambda s: not s["online"], "offline after a stop")
        assert stopped["reason"] == "stopped"


async def test_broker_restart_resumes_and_sends_buffered_readings(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    broker = await start_broker(supervisor, tmp_path, "mosquitto")
    port = int(broker.url.rsplit(":", 1)[1])
    await start_gateway(supervisor, broker, tmp_path, "--count", "2")
    async with watching(broker) as watch:
        for gateway_id in ("gw-1", "gw-2"):
            await watch.wait(partial(watch.of, gateway_id, "results"), f"results of {gateway_id}")
        before = (await watch.command("gw-1", Command(command_id="p-1", kind="ping")))["status"]
    # The whole process group: the broker process and the mosquitto it runs.
    os.killpg(broker.child.pid, signal.SIGKILL)
    await broker.child.process.wait()
    await asyncio.sleep(0.5)  # readings are taken meanwhile
    (tmp_path / "again").mkdir()
    broker = await start_broker(supervisor, tmp_path / "again", "mosquitto", port=port)
    async with watching(broker, "watcher-2") as watch:
        for gateway_id in ("gw-1", "gw-2"):
            await watch.status(gateway_id, lambda s: s["online"], f"{gateway_id} back online")
        # Every reading is either in a published batch or still waiting: none was lost, and the
        # readings taken during the outage went out in the batches after it.
        per_batch = 4 * 2

        async def drained() -> dict[str, Any]:
            for n in range(200):
                answer = await watch.command("gw-1", Command(command_id=f"p-{n + 2}", kind="ping"))
                status: dict[str, Any] = answer["status"]
                if status["readings_buffered"] < per_batch:
                    return status
                await asyncio.sleep(0.05)
            raise AssertionError("gw-1 never sent its buffered readings")

        after = await drained()
        assert after["readings_dropped_total"] == 0
        assert after["batches_total"] * per_batch + after["readings_buffered"] == after["readings_total"]
        assert after["readings_total"] >= before["readings_total"] + 10 * 2
        await watch.wait(partial(watch.of, "gw-2", "results"), "results of gw-2 after the restart")


async def test_a_gateway_stopping_beside_an_unanswering_broker_exits_at_once(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    # As when a whole world stops: the broker stops answering while the gateway says goodbye.
    broker = await start_broker(supervisor, tmp_path, "mosquitto")
    async with watching(broker) as watch:
        gateway = await start_gateway(supervisor, broker, tmp_path)
        await watch.status("gw", lambda s: s["online"], "online")
    os.killpg(broker.child.pid, signal.SIGSTOP)  # frozen: connections open, nothing answered
    try:
        gateway.process.terminate()
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(gateway.process.wait(), 15)
        # Its goodbye ("offline: stopped") waits 1 s at most, not a publish's 10 s.
        assert asyncio.get_running_loop().time() - started < 5  # ~1.1 s; 10 s before
    finally:
        os.killpg(broker.child.pid, signal.SIGCONT)
