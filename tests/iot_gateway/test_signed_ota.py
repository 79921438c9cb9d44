"""A gateway with --trusted-key takes over the air only modules a trusted key signed: an unsigned
or wrongly signed update is refused (naming the module and the key ids), a signed one runs."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from cpclient.operator import OperatorClient
from iotwire.payloads import Command
from protos.edgecdn.v1 import common_pb2
from runtime.signing import generate_key_pair, load_signing_key
from simulator.supervisor import ChildSpec, Supervisor
from tests.control_plane.support import sha
from tests.iot_gateway.support import REPO, SENSOR_STATS, start_gateway, watching
from tests.iot_gateway.test_ota_process import renamed
from tests.mqtt_brokers import start_broker


async def test_a_gateway_refuses_an_unsigned_or_wrongly_signed_ota(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    trusted, other = tmp_path / "release.pem", tmp_path / "other.pem"
    trusted_id, other_id = generate_key_pair(trusted), generate_key_pair(other)
    unsigned = renamed(SENSOR_STATS.read_bytes(), b"unsigned")
    wrong = renamed(SENSOR_STATS.read_bytes(), b"other key")
    signed = renamed(SENSOR_STATS.read_bytes(), b"signed")
    data_dir = tmp_path / "cp"
    argv = (sys.executable, "-m", "control_plane", "--port", "0", "--data-dir", str(data_dir))
    address = (await supervisor.start(ChildSpec(name="control-plane", argv=argv))).report.addresses["grpc"]
    tokens = json.loads((data_dir / "tokens.json").read_text())
    async with OperatorClient(address, tokens["operator"]) as client:
        for data, key in ((unsigned, None), (wrong, other), (signed, trusted)):
            sign = None if key is None else load_signing_key(key)
            await client.push_module(
                data, name="s", abi=common_pb2.ABI_WAGI, progress=lambda _: None, sign=sign
            )
    broker = await start_broker(supervisor, tmp_path, "mosquitto")
    async with watching(broker) as watch:
        await start_gateway(
            supervisor, broker, tmp_path, "--control-plane", address, "--token", tokens["gateway"],
            "--trusted-key", f"{trusted}.pub",
        )  # fmt: skip
        await watch.wait(lambda: watch.of("gw", "results"), "a first result")

        answer = await watch.command(
            "gw", Command(command_id="u-1", kind="update_module", sha256=sha(unsigned))
        )
        assert not answer["ok"]
        assert f"module {sha(unsigned)[:12]} refused (unsigned)" in answer["message"]
        assert f"it is unsigned (trusted keys: {trusted_id})" in answer["message"]
        assert answer["status"]["module_sha256"] == sha(SENSOR_STATS.read_bytes())

        answer = await watch.command("gw", Command(command_id="u-2", kind="update_module", sha256=sha(wrong)))
        assert not answer["ok"]
        assert "refused (untrusted_signer)" in answer["message"]
        assert f"signed by key {other_id}, which is not trusted" in answer["message"]

        answer = await watch.command(
            "gw", Command(command_id="u-3", kind="update_module", sha256=sha(signed))
        )
        assert answer["ok"], answer
        assert answer["status"]["module_sha256"] == sha(signed)


async def test_a_bad_trusted_key_file_stops_the_gateway_with_a_clear_error(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "iot_gateway", "--mqtt", "mqtt://127.0.0.1:1", "--mqtt-user", "gateway",
        "--mqtt-password", "p", "--trusted-key", str(tmp_path / "nope"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode != 0
    assert err.decode().startswith(
        f"iot-gateway: --trusted-key: key file {tmp_path / 'nope'}: No such file"
    ), err
