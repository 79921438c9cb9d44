"""Over-the-air updates for real: a control plane with uploaded modules, a real broker, the
gateway process downloading by digest (gateway-role token), trialling, switching, rolling back
by itself, and restarting on its last good module while the control plane is away."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import aiohttp
import grpc
import wasmtime

from cpclient import auth_metadata
from iotwire.payloads import Command
from protos.edgecdn.v1 import traces_pb2, traces_pb2_grpc
from simulator.supervisor import ChildSpec, Supervisor
from tests.control_plane.support import sha, upload
from tests.iot_gateway.support import REPO, SENSOR_STATS, start_gateway, watching
from tests.mqtt_brokers import start_broker

HOT_TRAP = Path(__file__).parent / "modules" / "hot_trap.wat"
BROKEN = REPO / "handlers" / "geo-hello-broken" / "geo_hello_broken.wasm"


def renamed(wasm: bytes, marker: bytes) -> bytes:
    """The same module with a custom section appended: same behaviour, another digest."""
    name = b"edgecdn-test"
    body = bytes([len(name)]) + name + marker
    return wasm + b"\x00" + bytes([len(body)]) + body


async def control_plane(supervisor: Supervisor, tmp_path: Path, modules: dict[str, bytes]) -> tuple[str, str]:
    """A control plane holding ``modules``; its address and a gateway-role token."""
    data_dir = tmp_path / "cp"
    argv = (sys.executable, "-m", "control_plane", "--port", "0", "--data-dir", str(data_dir))
    child = await supervisor.start(ChildSpec(name="control-plane", argv=argv))
    address = child.report.addresses["grpc"]
    tokens = json.loads((data_dir / "tokens.json").read_text())
    async with grpc.aio.insecure_channel(address) as channel:
        for name, data in modules.items():
            await upload(channel, auth_metadata(tokens["operator"]), data, name=name)
    return address, tokens["gateway"]


async def test_update_probation_restart_on_last_good_and_refusals(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    good = renamed(SENSOR_STATS.read_bytes(), b"v2")
    broken = BROKEN.read_bytes()
    address, token = await control_plane(supervisor, tmp_path, {"sensor-stats-2": good, "broken": broken})
    broker = await start_broker(supervisor, tmp_path, "mosquitto")
    cp = ("--control-plane", address, "--token", token, "--probation", "2")
    async with watching(broker) as watch:
        gateway = await start_gateway(supervisor, broker, tmp_path, *cp, "--count", "3")
        for gateway_id in ("gw-1", "gw-2", "gw-3"):
            await watch.wait(partial(watch.of, gateway_id, "results"), f"{gateway_id}'s first result")
        # A thousand gateways in one process share one download: here three.
        for n in (1, 2, 3):
            answer = await watch.command(
                f"gw-{n}", Command(command_id=f"u-{n}", kind="update_module", sha256=sha(good))
            )
            assert answer["ok"], answer
        await watch.status(
            "gw-1",
            lambda s: s["module_sha256"] == sha(good) and s["module_probation_left"] == 0,
            "the update past its probation",
        )
        async with aiohttp.ClientSession() as http:
            metrics = await (await http.get(gateway.report.addresses["http"] + "/metrics")).text()
        assert "iot_gateway_module_downloads_total 1.0" in metrics

        unknown = await watch.command(
            "gw-1", Command(command_id="u-x", kind="update_module", sha256="0" * 64)
        )
        assert not unknown["ok"]
        assert "fetch_failed" in unknown["message"]
        trial = await watch.command(
            "gw-1", Command(command_id="u-b", kind="update_module", sha256=sha(broken))
        )
        assert not trial["ok"]
        assert "trial" in trial["message"]
        assert trial["status"]["module_sha256"] == sha(good)

        gateway.process.kill()
        await gateway.process.wait()
        # Restarted with the control plane out of reach: it runs the last good module from disk.
        await start_gateway(supervisor, broker, tmp_path, "--count", "3", name="gateway-again")
        back = await watch.status("gw-1", lambda s: s["online"] and s["readings_total"] > 0, "gw-1 back")
        assert back["module_sha256"] == sha(good)


async def test_a_module_that_breaks_on_probation_is_rolled_back(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    trap = bytes(wasmtime.wat2wasm(HOT_TRAP.read_text()))
    address, token = await control_plane(supervisor, tmp_path, {"hot-trap": trap})
    broker = await start_broker(supervisor, tmp_path, "mosquitto")
    async with watching(broker) as watch:
        # Cool until the heat wave 3 s in: the module passes its trial, then traps.
        await start_gateway(
            supervisor, broker, tmp_path, "--control-plane", address, "--token", token, "--probation", "1000",
            "--sensors", "temperature", "--heat-wave", "3s,1h",
        )  # fmt: skip
        await watch.wait(lambda: watch.of("gw", "results"), "a first result")
        answer = await watch.command("gw", Command(command_id="u-1", kind="update_module", sha256=sha(trap)))
        assert answer["ok"], answer
        status = await watch.status("gw", lambda s: s["rollbacks_total"] == 1, "the rollback")
        assert status["module_name"] == "sensor-stats"
        assert "trap" in status["last_error"]
        # The batch the module broke on is then summarised by the good module: it raises alerts.
        await watch.wait(lambda: watch.of("gw", "alerts"), "alerts from the restored module")


async def test_one_download_updates_a_thousand_gateways(supervisor: Supervisor, tmp_path: Path) -> None:
    good = renamed(SENSOR_STATS.read_bytes(), b"fleet")
    address, token = await control_plane(supervisor, tmp_path, {"sensor-stats-fleet": good})
    broker = await start_broker(supervisor, tmp_path, "mosquitto")
    count = 1000
    async with watching(broker, kinds=("status", "cmd/result")) as watch:
        # One batch at once (its trial batch), then quiet: the test measures the OTA, not load.
        gateway = await start_gateway(
            supervisor, broker, tmp_path, "--control-plane", address, "--token", token,
            "--count", str(count), "--interval", "1h", "--batch", "1",
        )  # fmt: skip
        ids = [f"gw-{n}" for n in range(1, count + 1)]

        def all_online() -> bool:
            online = {body["gateway_id"] for _, body, _ in watch.seen if body.get("online") is True}
            return online.issuperset(ids)

        await watch.wait(all_online, "every gateway online", timeout_s=30)
        for n, gateway_id in enumerate(ids):
            command = Command(command_id=f"f-{n}", kind="update_module", sha256=sha(good))
            await watch.send(gateway_id, command)

        def all_answered() -> int:
            return sum(1 for name, body, _ in watch.seen if name.endswith("/cmd/result") and body.get("ok"))

        await watch.wait(lambda: all_answered() >= count, "every gateway's result", timeout_s=30)
        async with aiohttp.ClientSession() as http:
            metrics = await (await http.get(gateway.report.addresses["http"] + "/metrics")).text()
        assert "iot_gateway_module_downloads_total 1.0" in metrics


async def test_a_command_continues_its_trace_in_the_control_plane(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    address, _ = await control_plane(supervisor, tmp_path, {})
    tokens = json.loads((tmp_path / "cp" / "tokens.json").read_text())
    broker = await start_broker(supervisor, tmp_path, "mosquitto")
    # The gateway role may not export spans (control_plane/auth.py): export with a node token.
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{address}",
           "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{tokens['node']}"}  # fmt: skip
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with watching(broker) as watch:
        gateway = await start_gateway(supervisor, broker, tmp_path, env=env)
        await watch.status("gw", lambda s: s["online"], "online")
        command = Command(command_id="t-1", kind="ping")
        answer = await watch.command("gw", command, traceparent=f"00-{trace_id}-00f067aa0ba902b7-01")
        assert answer["ok"]
        gateway.process.terminate()  # a stop flushes the exporter
        await gateway.process.wait()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = traces_pb2_grpc.TraceQueryServiceStub(channel)
        request = traces_pb2.GetTraceRequest(trace_id=trace_id)
        trace = await stub.GetTrace(request, metadata=auth_metadata(tokens["operator"]), timeout=10)
    spans = [(span.service, span.name, span.parent_span_id) for span in trace.spans]
    assert ("iot-gateway", "gateway command", "00f067aa0ba902b7") in spans
