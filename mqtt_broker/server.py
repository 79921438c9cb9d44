"""Runs the world's MQTT broker: Mosquitto (what users run, when installed) as a child, or amqtt
in this process, on loopback, with password authentication and no anonymous clients.

Mosquitto writes no ready file of ours, so this process does: once the broker accepts TCP
connections it reports ``{"mqtt": "mqtt://127.0.0.1:PORT"}``. A free port is taken at
start when none is given (the supervisor pins it for restarts). The process ends when the
broker does, so a dead broker is a dead child the supervisor restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from mqtt_broker.config import BrokerConfig
from mqtt_broker.errors import BrokerFailedError
from mqtt_broker.passwords import check_users, mosquitto_file
from runtime.files import write_atomically
from runtime.process import StopEvent, wait_for_stop
from runtime.ready import ReadyCallback

logger = logging.getLogger(__name__)

SERVICE_NAME = "mqtt-broker"
READY_TIMEOUT_S = 10.0


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (path for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(path).is_file()), None
    )


async def run(
    config: BrokerConfig, *, ready: ReadyCallback | None = None, stop: StopEvent | None = None
) -> None:
    check_users(config.users)
    port = config.port or free_port(config.host)
    binary = mosquitto_binary() if config.engine in ("auto", "mosquitto") else None
    if binary is None and config.engine == "mosquitto":
        raise BrokerFailedError("--engine mosquitto: no mosquitto binary (apt-get install mosquitto)")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    url = f"mqtt://{config.host}:{port}"
    if binary is not None:
        await _run_mosquitto(binary, config, port, url, ready=ready, stop=stop)
    else:
        await _run_amqtt(config, port, url, ready=ready, stop=stop)


async def _run_mosquitto(
    binary: str,
    config: BrokerConfig,
    port: int,
    url: str,
    *,
    ready: ReadyCallback | None,
    stop: StopEvent | None,
) -> None:
    passwords = config.data_dir / "mosquitto.passwd"
    write_atomically(passwords, mosquitto_file(config.users))
    os.chmod(passwords, 0o600)
    conf = config.data_dir / "mosquitto.conf"
    # `user`: started as root, mosquitto would become the `mosquitto` user and could not read
    # our password file; naming the current user keeps it as it is.
    write_atomically(
        conf,
        f"user {getpass.getuser()}\nlistener {port} {config.host}\nallow_anonymous false\n"
        f"password_file {passwords}\npersistence false\nlog_dest stdout\nlog_type error\nlog_type warning\n"
        "max_packet_size 1048576\n",
    )
    process = await asyncio.create_subprocess_exec(binary, "-c", str(conf), stdin=asyncio.subprocess.DEVNULL)
    try:
        await _wait_listening(config.host, port, process)
        logger.info("mosquitto (pid %d) serving on %s", process.pid, url)
        if ready is not None:
            ready({"mqtt": url})
        stopped = asyncio.create_task(wait_for_stop(stop), name="broker-stop")
        exited = asyncio.create_task(process.wait(), name="broker-exit")
        await asyncio.wait({stopped, exited}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if exited.done():
            raise BrokerFailedError(f"mosquitto exited with status {process.returncode}")
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 3)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_listening(host: str, port: int, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.returncode is not None:
            raise BrokerFailedError(
                f"mosquitto exited with status {process.returncode} before listening on {port}"
            )
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise BrokerFailedError(
                    f"mosquitto did not listen on {host}:{port} within {READY_TIMEOUT_S:g}s"
                ) from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


async def _run_amqtt(
    config: BrokerConfig, port: int, url: str, *, ready: ReadyCallback | None, stop: StopEvent | None
) -> None:
    import crypt  # noqa: PLC0415 - the fallback only; deprecated module, present in 3.11 and 3.12

    from amqtt.broker import Broker  # noqa: PLC0415 - the fallback only

    passwords = config.data_dir / "amqtt.passwd"
    lines = "".join(
        f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))}\n"
        for user, password in sorted(config.users.items())
    )
    write_atomically(passwords, lines)
    os.chmod(passwords, 0o600)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{config.host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
                "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(passwords)},
            },
        }
    )
    await broker.start()
    try:
        logger.info("amqtt serving on %s", url)
        if ready is not None:
            ready({"mqtt": url})
        await wait_for_stop(stop)
    finally:
        await broker.shutdown()
