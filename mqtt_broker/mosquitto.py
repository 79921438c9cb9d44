"""Runs Mosquitto as the broker process itself: this process writes the configuration and the
password file, then ``execv``s mosquitto, so the pid its supervisor started IS mosquitto.

Why exec rather than a child: a wrapper killed with SIGKILL cannot stop its child, and an
orphaned mosquitto keeps the port the supervisor pins for the restart, which then fails to
bind in a loop. With exec there is one process: kill it and the port is free.

Mosquitto writes no ready file of ours, so before the exec a helper is forked (twice, so
that mosquitto never has a child to reap) that waits, for a bounded time, until the port
accepts connections and then writes the ready report with mosquitto's pid. It gives up, and
writes nothing, when mosquitto dies first or the deadline passes; it never outlives that.

The parent-death signal armed by ``die_with_parent`` survives ``execve`` of a binary that is
not set-user-ID and has no file capabilities (prctl(2)), and mosquitto keeps its credentials
when told to run as the current user, so mosquitto still dies with its supervisor.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import NoReturn

from mqtt_broker.config import BrokerConfig
from mqtt_broker.errors import BrokerFailedError
from mqtt_broker.passwords import mosquitto_file
from runtime.files import write_atomically
from runtime.process import die_with_parent
from runtime.ready import ReadyReport, write_ready_file

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 10.0
POLL_S = 0.05
# Per subscriber, above the in-flight window: room for a fleet's worth of fan-in (see below).
MAX_QUEUED_MESSAGES = 100_000


def write_mosquitto_files(config: BrokerConfig, port: int) -> Path:
    """Write the password file and the configuration; return the configuration's path."""
    passwords = config.data_dir / "mosquitto.passwd"
    write_atomically(passwords, mosquitto_file(config.users))
    os.chmod(passwords, 0o600)
    conf = config.data_dir / "mosquitto.conf"
    # `user`: started as root, mosquitto would become the `mosquitto` user and could not read
    # our password file (and the change of uid would clear the parent-death signal); naming
    # the current user keeps it as it is.
    # `max_queued_messages`: the control plane subscribes to the whole fleet (fan-in), and on
    # (re)subscribe or a fleet-wide command it is sent one message per gateway at once.
    # Mosquitto's default bound of 1000 queued QoS 1 messages per client silently dropped
    # statuses and command results past the thousandth (seen with 1000 gateways on a busy
    # machine); a gateway's own queue holds only its commands, so the higher bound costs
    # nothing there.
    write_atomically(
        conf,
        f"user {getpass.getuser()}\nlistener {port} {config.host}\n{_tls_lines(config)}"
        "allow_anonymous false\n"
        f"password_file {passwords}\npersistence false\nlog_dest stdout\nlog_type error\nlog_type warning\n"
        f"max_packet_size 1048576\nmax_queued_messages {MAX_QUEUED_MESSAGES}\n",
    )
    return conf


def _tls_lines(config: BrokerConfig) -> str:
    """The listener's TLS settings: a certificate and key, and with a client CA, mutual TLS
    (a client certificate is required; the password still names the user)."""
    if config.tls_cert is None or config.tls_key is None:
        return ""
    lines = f"certfile {config.tls_cert.resolve()}\nkeyfile {config.tls_key.resolve()}\n"
    if config.client_ca is not None:
        lines += (
            f"cafile {config.client_ca.resolve()}\nrequire_certificate true\nuse_identity_as_username false\n"
        )
    return lines


def check_port_free(host: str, port: int) -> None:
    """Refuse to start on a port something else holds: the ready helper would take that
    listener for mosquitto's and report ready for a broker that is about to fail."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise BrokerFailedError(f"{host}:{port} is already in use ({exc.strerror})") from exc


def exec_mosquitto(binary: str, config: BrokerConfig, port: int) -> NoReturn:
    """Become mosquitto on ``host:port``; returns only by raising when the exec fails."""
    check_port_free(config.host, port)
    conf = write_mosquitto_files(config, port)
    url = f"{config.scheme}://{config.host}:{port}"
    broker_pid = os.getpid()
    if config.ready_file is not None:
        _fork_ready_helper(config.host, port, broker_pid, config.ready_file, {"mqtt": url})
    die_with_parent()
    logger.info("exec mosquitto (pid %d) on %s", broker_pid, url)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(binary, [binary, "-c", str(conf)])  # noqa: S606 - exec is the point, no shell
    except OSError as exc:
        raise BrokerFailedError(f"cannot run {binary}: {exc.strerror}") from exc


def _fork_ready_helper(
    host: str, port: int, broker_pid: int, ready_file: Path, addresses: dict[str, str]
) -> None:
    first = os.fork()
    if first != 0:
        os.waitpid(first, 0)  # the middle process exits at once; the helper is init's to reap
        return
    code = 0
    try:
        if os.fork() == 0:
            try:
                _report_when_listening(host, port, broker_pid, ready_file, addresses)
            except BaseException:  # noqa: BLE001 - a forked helper must never return into the parent's code
                code = 1
            finally:
                os._exit(code)
    finally:
        os._exit(0)


def _report_when_listening(
    host: str, port: int, broker_pid: int, ready_file: Path, addresses: dict[str, str]
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and _alive(broker_pid):
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.settimeout(1.0)
            probe.connect((host, port))
            if _alive(broker_pid):
                write_ready_file(
                    ready_file,
                    ReadyReport(
                        service="mqtt-broker",
                        pid=broker_pid,
                        addresses=addresses,
                        extra={"engine": "mosquitto"},
                    ),
                )
            return
        time.sleep(POLL_S)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its supervisor, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
