"""The control-plane process: real gRPC on loopback, health and reflection, clean shutdown."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from simulator.supervisor import RunningChild, Supervisor


async def test_health_service_reports_serving(control_plane: RunningChild) -> None:
    address = control_plane.report.addresses["grpc"]
    assert address.startswith("127.0.0.1:")
    async with grpc.aio.insecure_channel(address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_health_service(control_plane: RunningChild) -> None:
    async with grpc.aio.insecure_channel(control_plane.report.addresses["grpc"]) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(timeout=5)
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        response = await call.read()
        await call.done_writing()
    names = {service.name for service in response.list_services_response.service}
    assert "grpc.health.v1.Health" in names
    assert {"edgecdn.v1.ModuleService", "edgecdn.v1.NodeSessionService", "edgecdn.v1.NodeService"} <= names


async def test_sigterm_stops_the_process_promptly(
    supervisor: Supervisor, control_plane: RunningChild
) -> None:
    await supervisor.stop_all(timeout_s=5)
    assert control_plane.process.returncode == 0


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--port", "70000"], "--port: 70000 is not a TCP port"),
        (["--port", "x"], "invalid int value"),
        (["--tls-cert", "/etc/hostname"], "--tls-cert/--tls-key: give both or neither"),
        (
            ["--tokens", "/nonexistent/tokens.json"],
            "--tokens: /nonexistent/tokens.json is not a readable file",
        ),
        (["--missed-heartbeats", "0"], "--missed-heartbeats: must be at least 1"),
    ],
)
async def test_bad_flags_fail_with_a_clear_message(flag: list[str], message: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_plane", *flag, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    text = stderr.decode()
    assert message in text
    assert "Traceback" not in text
    assert text.startswith("control-plane: ") or "usage: control-plane" in text


async def test_bad_tokens_file_fails_cleanly(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"root": "abcdefghijk"}')
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_plane", "--tokens", str(tokens), stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    text = stderr.decode()
    assert process.returncode == 1
    assert f"control-plane: {tokens}: root: role 'root' is not one of viewer, operator, node" in text
    assert "Traceback" not in text
