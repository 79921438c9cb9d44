"""IoT gateways: one gateway's readings/s beside a bare aiomqtt loop, and a fleet of 1,000.

    .venv/bin/python -m bench.iot [--window 5] [--gateways 1000] [--json FILE]

Real processes on 127.0.0.1: the world's broker (``python -m mqtt_broker``, Mosquitto, MQTT v5),
a control plane with ``--mqtt``, and ``python -m iot_gateway``.

* **One gateway.** ``--interval 0.0001 --batch 250`` with all four sensors (its sampling ceiling:
  40,000 readings/s), every batch through the sensor-stats wasm module, telemetry at QoS 0.
  Peer: a bare aiomqtt publisher process sending the same telemetry JSON (500 readings per
  payload, as the gateway slices them) at QoS 0 as fast as it can, no module, no sampling.
  Both are counted the same way, by a subscriber in this process that parses every telemetry
  payload, over ``--window`` seconds after a warm-up; the gateway's own
  ``iot_gateway_readings_total`` (readings taken) over the same window is printed beside it.
  The two run one after the other, never at once (two cores). Budget: gateway >= 5,000/s.
* **1,000 gateways in one process** (``--count 1000 --interval 10s --batch 1``):
  start until ``ListGateways`` shows all online; ``SendGatewayCommand`` ``update_module`` to
  all (a second module in the registry) until every result is in, all ``ok`` (budget < 10 s);
  then ``kill -9`` of the gateway process until ``ListGateways`` shows all offline (the broker
  publishes the 1,000 last wills; budget < 2 s).

The whole run takes about a minute, stops by itself and kills every child's process group
(no orphaned mosquitto). Exit 1 when a budget is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

from bench.harness import REPO_ROOT, CpuClock
from cpclient.gateways import GatewayClient
from cpclient.operator import OperatorClient
from iot_gateway.sensors import Reading
from iotwire.link import BrokerLink
from iotwire.payloads import encode
from iotwire.topics import subscription, topic
from protos.edgecdn.v1 import common_pb2, gateways_pb2
from simulator.supervisor import ChildSpec, RunningChild, Supervisor

SENSOR_STATS = REPO_ROOT / "handlers" / "sensor-stats" / "sensor_stats.wasm"
USERS = {"gateway": "bench-gateway-secret", "control-plane": "bench-control-plane-secret"}
REGION = "eu-west-1"
SENSORS = "temperature,humidity,pressure,co2"
SLICE = 500  # readings per telemetry payload, as iot_gateway.mqtt.TELEMETRY_SLICE
READINGS_BUDGET = 5_000.0
OTA_BUDGET_S = 10.0
OFFLINE_BUDGET_S = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    label: str
    ours: float
    peer: float | None
    unit: str
    budget: float | None
    higher_is_better: bool

    @property
    def met(self) -> bool:
        if self.budget is None:
            return True
        return self.ours >= self.budget if self.higher_is_better else self.ours < self.budget


# --- the world's processes -------------------------------------------------------------------


async def start_broker(supervisor: Supervisor, directory: Path, *, name: str = "mqtt-broker") -> BrokerLink:
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before the broker starts
    users = directory / "mqtt-users.json"
    users.write_text(json.dumps(USERS))
    users.chmod(0o600)
    child = await supervisor.start(
        ChildSpec(
            name=name,
            argv=(
                sys.executable, "-m", "mqtt_broker", "--users", str(users), "--port", "0",
                "--data-dir", str(directory / "mqtt"), "--engine", "mosquitto", "--log-level", "warning",
            ),
            ready_timeout_s=20,
        )
    )  # fmt: skip
    return BrokerLink(url=child.report.addresses["mqtt"], username="control-plane",
                      password=USERS["control-plane"], protocol="5")  # fmt: skip


async def start_control_plane(supervisor: Supervisor, directory: Path, broker: BrokerLink) -> tuple[str, Any]:
    data_dir = directory / "cp"
    child = await supervisor.start(
        ChildSpec(
            name="control-plane",
            argv=(
                sys.executable, "-m", "control_plane", "--port", "0", "--data-dir", str(data_dir),
                "--log-level", "warning", "--mqtt", broker.url, "--mqtt-user", "control-plane",
                "--mqtt-protocol", "5",
            ),
            env={"CONTROL_PLANE_MQTT_PASSWORD": USERS["control-plane"]},
        )
    )  # fmt: skip
    return child.report.addresses["grpc"], json.loads((data_dir / "tokens.json").read_text())


async def start_gateway(
    supervisor: Supervisor, directory: Path, broker: BrokerLink, *flags: str, name: str
) -> RunningChild:
    argv = (
        sys.executable, "-m", "iot_gateway", "--mqtt", broker.url, "--mqtt-user", "gateway",
        "--mqtt-protocol", "5", "--region", REGION, "--module", str(SENSOR_STATS),
        "--state-dir", str(directory / name), "--seed", "7", "--log-level", "warning", *flags,
    )  # fmt: skip
    spec = ChildSpec(name=name, argv=argv, env={"IOT_GATEWAY_MQTT_PASSWORD": USERS["gateway"]})
    return await supervisor.start(spec)


def kill_groups(children: tuple[RunningChild, ...]) -> None:
    """SIGKILL every child's process group (each child leads its own session): the broker
    process and the mosquitto it runs go together."""
    for child in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)


# --- part 1: one gateway against a bare aiomqtt loop --------------------------------------------


class TelemetryCounter:
    """Subscribes to every gateway's telemetry and counts the readings in the payloads."""

    def __init__(self) -> None:
        self.readings = 0

    async def run(self, broker: BrokerLink, ready: asyncio.Event) -> None:
        async with broker.client("bench-counter", max_queued_outgoing=None) as client:
            await client.subscribe(subscription("telemetry"), qos=0)
            ready.set()
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, bytes | bytearray):
                    self.readings += len(json.loads(payload)["readings"])

    async def rate(self, window_s: float) -> float:
        before, started = self.readings, time.perf_counter()
        await asyncio.sleep(window_s)
        return (self.readings - before) / (time.perf_counter() - started)


async def counters(http: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """The gateway's readings taken and readings dropped from its full buffer (/metrics)."""
    text = await (await http.get(f"{url}/metrics")).text()
    found = []
    for name in ("iot_gateway_readings_total", "iot_gateway_readings_dropped_total"):
        match = re.search(rf"^{name} ([\d.e+]+)$", text, re.MULTILINE)
        found.append(float(match.group(1)) if match else 0.0)
    return found[0], found[1]


async def one_gateway(
    supervisor: Supervisor, directory: Path, broker: BrokerLink, window_s: float
) -> dict[str, float]:
    counter = TelemetryCounter()
    ready = asyncio.Event()
    counting = asyncio.create_task(counter.run(broker, ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        gateway = await start_gateway(
            supervisor, directory, broker, "--interval", "0.0001", "--batch", "250", "--sensors", SENSORS,
            name="gateway-one",
        )  # fmt: skip
        await asyncio.sleep(3)  # warm-up: connected, module compiled, steady batches
        async with aiohttp.ClientSession() as http:
            url = gateway.report.addresses["http"]
            (taken_before, dropped_before), at = await counters(http, url), time.perf_counter()
            delivered = await counter.rate(window_s)
            taken_after, dropped_after = await counters(http, url)
            elapsed = time.perf_counter() - at
            taken, dropped = (
                (taken_after - taken_before) / elapsed,
                (dropped_after - dropped_before) / elapsed,
            )
        gateway.process.send_signal(signal.SIGTERM)
        await gateway.process.wait()
        await asyncio.sleep(0.5)  # the last telemetry drains before the peer starts

        bare = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.iot", "--bare-publisher", broker.url,
            env={**os.environ, "BENCH_IOT_PASSWORD": USERS["gateway"]}, start_new_session=True,
        )  # fmt: skip
        try:
            await asyncio.sleep(2)  # warm-up
            bare_rate = await counter.rate(window_s)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(bare.pid, signal.SIGKILL)
            await bare.wait()
    finally:
        counting.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await counting
    return {
        "gateway_delivered": delivered,
        "gateway_taken": taken,
        "gateway_dropped": dropped,
        "bare_delivered": bare_rate,
    }


def telemetry_payloads() -> list[dict[str, Any]]:
    """Readings shaped as the gateway's (sensor, value, unit, ts), one slice's worth per payload;
    the values vary so that no two payloads are alike."""
    units = {"temperature": "C", "humidity": "%", "pressure": "hPa", "co2": "ppm"}
    payloads = []
    for n in range(20):
        readings = [
            Reading(sensor=s, value=round(20 + (n * SLICE + i) % 97 / 10, 2), unit=units[s],  # type: ignore[arg-type]
                    ts=round(1764868148.0 + i * 1e-4, 3)).to_json()
            for i in range(SLICE // 4) for s in units
        ]  # fmt: skip
        payloads.append(readings)
    return [{"gateway_id": "bare", "region": REGION, "readings": r} for r in payloads]


async def bare_publisher(url: str) -> None:
    """The peer: publish telemetry payloads at QoS 0 in a loop, as fast as aiomqtt goes."""
    link = BrokerLink(url=url, username="gateway", password=os.environ["BENCH_IOT_PASSWORD"], protocol="5")
    name = topic(REGION, "bare", "telemetry")
    bodies = telemetry_payloads()
    async with link.client("bench-bare", max_queued_outgoing=None) as client:
        n = 0
        while True:
            body = bodies[n % len(bodies)]
            body["ts"] = time.time()
            await client.publish(name, encode(body), qos=0)
            n += 1
            if n % 8 == 0:
                await asyncio.sleep(0)  # let the client's network loop run


# --- part 2: 1,000 gateways ---------------------------------------------------------------------


def variant(wasm: bytes, marker: bytes) -> bytes:
    """The same module with a custom section appended: another digest, identical behaviour
    (custom sections are ignored by the engine), so the OTA's trial passes as it would for a
    real new version."""
    name = b"edgecdn-bench"
    body = bytes([len(name)]) + name + marker
    return wasm + b"\x00" + bytes([len(body)]) + body


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float) -> float:
    started = time.perf_counter()
    while not await predicate():
        if time.perf_counter() - started > timeout_s:
            return float("inf")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def fleet(supervisor: Supervisor, directory: Path, broker: BrokerLink, count: int) -> dict[str, Any]:
    address, tokens = await start_control_plane(supervisor, directory, broker)
    async with OperatorClient(address, tokens["operator"]) as operator:
        gateways = GatewayClient(operator)
        module = variant(SENSOR_STATS.read_bytes(), b"ota")
        digest = hashlib.sha256(module).hexdigest()
        await operator.push_module(
            module, name="sensor-stats-ota", abi=common_pb2.ABI_WAGI, progress=lambda _: None
        )

        async def online() -> int:
            listed = await gateways.list_gateways()
            return sum(1 for g in listed.gateways if g.online)

        async def all_online() -> bool:
            return await online() >= count

        started = time.perf_counter()
        gateway = await start_gateway(
            supervisor, directory, broker, "--control-plane", address, "--token", tokens["gateway"],
            "--count", str(count), "--interval", "10s", "--batch", "1", "--gateway-id", "gw",
            name="gateway-fleet",
        )  # fmt: skip
        await until(all_online, 60)
        listed_s = time.perf_counter() - started

        request = gateways_pb2.GatewayCommandRequest(update_module=gateways_pb2.UpdateModule(sha256=digest))
        request.target.all = True
        request.deadline.FromSeconds(30)
        sent = time.perf_counter()
        response = await gateways.send_command(request)
        ota_s = time.perf_counter() - sent
        ok = sum(1 for result in response.results if result.ok)
        failures = sorted({result.message for result in response.results if not result.ok})[:3]

        async def all_offline() -> bool:
            return await online() == 0

        killed = time.perf_counter()
        gateway.process.kill()
        offline_s = await until(all_offline, 30)
        await gateway.process.wait()
        listed = await gateways.list_gateways()
        reasons = sorted({g.offline_reason for g in listed.gateways})
    return {
        "listed_s": listed_s,
        "listed": len(listed.gateways),
        "ota_s": ota_s,
        "ota_ok": ok,
        "ota_results": len(response.results),
        "ota_failures": failures,
        "offline_s": offline_s if offline_s != float("inf") else time.perf_counter() - killed,
        "offline_reasons": reasons,
    }


# --- the run --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    clock, load = CpuClock.now(), os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-iot-") as tmp:
        directory = Path(tmp)
        supervisor = Supervisor(directory / "run")
        async with supervisor:
            try:
                broker = await start_broker(supervisor, directory)
                one = await one_gateway(supervisor, directory, broker, args.window)
                print(f"one gateway: {json.dumps({k: round(v) for k, v in one.items()})}", flush=True)
                # A broker of its own: the fleet's world holds its 1,000 gateways and no other.
                fleet_broker = await start_broker(supervisor, directory / "fleet", name="mqtt-broker-fleet")
                many = await fleet(supervisor, directory, fleet_broker, args.gateways)
                print(f"{args.gateways} gateways: {json.dumps(many)}", flush=True)
            finally:
                children = supervisor.children
                await supervisor.stop_all(timeout_s=5)
                kill_groups(children)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"steal {CpuClock.now().steal_percent_since(clock):.1f}%")  # fmt: skip
    n = args.gateways
    rows = [
        Row(label="one gateway, readings/s delivered vs bare aiomqtt", ours=one["gateway_delivered"],
            peer=one["bare_delivered"], unit="/s", budget=READINGS_BUDGET, higher_is_better=True),
        Row(label="  readings/s taken (its iot_gateway_readings_total)", ours=one["gateway_taken"],
            peer=None, unit="/s", budget=None, higher_is_better=True),
        Row(label="  readings/s dropped from its full buffer meanwhile", ours=one["gateway_dropped"],
            peer=None, unit="/s", budget=None, higher_is_better=True),
        Row(label=f"{n} gateways: start until ListGateways shows all online", ours=many["listed_s"],
            peer=None, unit="s", budget=None, higher_is_better=False),
        Row(label=f"OTA update_module to all {n}: every result in", ours=many["ota_s"],
            peer=None, unit="s", budget=OTA_BUDGET_S, higher_is_better=False),
        Row(label="  gateways without an ok result", ours=float(n - many["ota_ok"]),
            peer=None, unit="", budget=1, higher_is_better=False),
        Row(label=f"kill -9 of the process: until all {n} offline", ours=many["offline_s"],
            peer=None, unit="s", budget=OFFLINE_BUDGET_S, higher_is_better=False),
    ]  # fmt: skip
    print(f"\n{'measure':<58} {'ours':>9} {'peer':>9} {'ratio':>6} {'budget':>8} met")
    for row in rows:
        peer = f"{row.peer:>9,.0f}" if row.peer is not None else f"{'-':>9}"
        ratio = f"{row.ours / row.peer:.2f}x" if row.peer else "-"
        budget = (
            "-"
            if row.budget is None
            else (f">={row.budget:g}" if row.higher_is_better else f"<{row.budget:g}")
        )
        value = f"{row.ours:>9,.0f}" if row.unit == "/s" else f"{row.ours:>9.3f}"
        print(f"{row.label:<58} {value} {peer} {ratio:>6} {budget:>8} {'yes' if row.met else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps({"one_gateway": one, "fleet": many}, indent=2))
    return 0 if all(row.met for row in rows) else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="bench.iot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--window", type=float, default=5.0, help="seconds counted per case (default: %(default)s)"
    )
    parser.add_argument(
        "--gateways", type=int, default=1000, help="gateways in the fleet (default: %(default)s)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--bare-publisher", metavar="URL", help=argparse.SUPPRESS)  # the peer's process
    args = parser.parse_args()
    if args.bare_publisher:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(bare_publisher(args.bare_publisher))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
