"""Runs the world's MQTT broker on loopback, with password authentication and no anonymous
clients: Mosquitto (what users run, when installed) by becoming it (mqtt_broker.mosquitto),
or amqtt in this process.

Either way the ready report is ``{"mqtt": "mqtt://127.0.0.1:PORT"}`` and carries the pid of
the process that serves MQTT. A free port is taken at start when none is given (the
supervisor pins it for restarts). A dead broker is a dead child the supervisor restarts.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path
from typing import NoReturn

from mqtt_broker.config import BrokerConfig
from mqtt_broker.errors import BrokerFailedError
from mqtt_broker.mosquitto import exec_mosquitto
from mqtt_broker.passwords import check_users
from runtime.files import write_atomically
from runtime.process import StopEvent, wait_for_stop
from runtime.ready import ReadyCallback

logger = logging.getLogger(__name__)

SERVICE_NAME = "mqtt-broker"


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (path for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(path).is_file()), None
    )


def mosquitto_for(config: BrokerConfig) -> str | None:
    """The mosquitto binary this configuration runs, or None for amqtt."""
    binary = mosquitto_binary() if config.engine in ("auto", "mosquitto") else None
    if binary is None and config.engine == "mosquitto":
        raise BrokerFailedError("--engine mosquitto: no mosquitto binary (apt-get install mosquitto)")
    if binary is None and config.tls:
        # amqtt cannot require client certificates: refuse rather than serve weaker TLS.
        raise BrokerFailedError("--tls-cert: TLS is served by Mosquitto only (apt-get install mosquitto)")
    return binary


def start_mosquitto(config: BrokerConfig, binary: str) -> NoReturn:
    """Become mosquitto (mqtt_broker.mosquitto): the supervised pid is the broker's."""
    check_users(config.users)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    exec_mosquitto(binary, config, config.port or free_port(config.host))


async def run(
    config: BrokerConfig, *, ready: ReadyCallback | None = None, stop: StopEvent | None = None
) -> None:
    """Serve amqtt in this process until ``stop``."""
    check_users(config.users)
    port = config.port or free_port(config.host)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    await _run_amqtt(config, port, f"mqtt://{config.host}:{port}", ready=ready, stop=stop)


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
