"""The broker process under a restarting supervisor: SIGKILL of the supervised pid leaves
nothing on the port, and the restart on the same pinned port serves again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import pytest

from mqtt_broker.server import free_port
from simulator.restarts import RestartPolicy
from simulator.supervisor import Supervisor
from tests.mqtt_brokers import ENGINES, USERS, start_broker

# A second before the restart: the window in which the port must already be free.
SLOW_ENOUGH = RestartPolicy(initial_s=1.0, maximum_s=2.0, healthy_after_s=60)


@pytest.fixture
async def restarting(tmp_path: Path) -> AsyncIterator[Supervisor]:
    async with Supervisor(tmp_path / "run", policy=SLOW_ENOUGH) as supervisor:
        yield supervisor


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def publish_once(port: int) -> None:
    async with aiomqtt.Client(
        "127.0.0.1", port, username="gateway", password=USERS["gateway"], timeout=5
    ) as client:
        await client.publish("edgecdn/v1/test", b"hello", qos=1)


@pytest.mark.parametrize("engine", ENGINES)
async def test_sigkill_of_the_broker_frees_the_port_and_the_restart_serves(
    restarting: Supervisor, tmp_path: Path, engine: str
) -> None:
    port = free_port("127.0.0.1")
    broker = await start_broker(restarting, tmp_path, engine, port=port)
    child = broker.child
    # The ready report names the process that serves MQTT, and that is the supervised one.
    assert child.report.pid == child.pid
    await publish_once(port)

    first_pid = child.pid
    os.kill(first_pid, signal.SIGKILL)
    await wait_for(lambda: child.state == "restarting")
    assert port_is_free(port), "the killed broker left something listening on its port"
    await wait_for(lambda: child.restarts == 1 and child.state == "up")
    assert child.report.pid == child.pid != first_pid
    await publish_once(port)


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux's")
@pytest.mark.parametrize("engine", ENGINES[:1])
async def test_mosquitto_dies_with_its_supervisor(tmp_path: Path, engine: str) -> None:
    """A supervisor killed with SIGKILL takes the exec'd mosquitto with it (PDEATHSIG survives exec)."""
    ready = tmp_path / "ready.json"
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"gateway": USERS["gateway"]}))
    port = free_port("127.0.0.1")
    # A stand-in supervisor: a Python process that starts the broker as the world does and waits.
    argv = [sys.executable, "-m", "mqtt_broker", "--users", str(users), "--port", str(port),
            "--data-dir", str(tmp_path / "data"), "--engine", engine, "--ready-file", str(ready)]  # fmt: skip
    script = (
        "import os, subprocess, time\n"
        "os.environ['EDGECDN_PARENT_PID'] = str(os.getpid())\n"
        f"subprocess.Popen({argv!r})\n"
        "time.sleep(60)\n"
    )
    parent = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    try:
        await wait_for(ready.exists)
        await publish_once(port)
    finally:
        parent.kill()
        await parent.wait()
    await wait_for(lambda: port_is_free(port))
