"""A real Mosquitto broker for the gateway tests: a free 127.0.0.1 port, password file."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

MOSQUITTO = Path("/usr/sbin/mosquitto")
PASSWD = Path("/usr/bin/mosquitto_passwd")


@dataclass(frozen=True, slots=True, kw_only=True)
class Broker:
    port: int
    passwords: dict[str, str]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def mosquitto(tmp: Path) -> AsyncIterator[Broker]:
    passwords = {"gateway": "gateway-pw-1", "control-plane": "control-plane-pw-1"}
    pwfile = tmp / "passwd"
    for i, (user, password) in enumerate(passwords.items()):
        flags = ["-b", "-c"] if i == 0 else ["-b"]
        made = await asyncio.create_subprocess_exec(str(PASSWD), *flags, str(pwfile), user, password)
        assert await asyncio.wait_for(made.wait(), 10) == 0
    port = _free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\npersistence false\n"
        # Started as root, Mosquitto would drop to its own user, which cannot read pytest's tmp.
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    proc = await asyncio.create_subprocess_exec(
        str(MOSQUITTO), "-c", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        yield Broker(port=port, passwords=passwords)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 5)
