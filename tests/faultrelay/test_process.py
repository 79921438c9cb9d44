"""``python -m faultrelay`` as the world's supervisor runs it: a real process, its ready file,
kill -9 and a restart on the same ports with the partition still in force, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from runtime.process import PARENT_PID_ENV
from runtime.ready import ReadyReport, read_ready_file
from tests.faultrelay.support import (
    TOKEN,
    LiveRelay,
    admin_client,
    echo_round_trip,
    echo_server,
    is_reset,
    link_view,
    partition,
)

READY_TIMEOUT_S = 15.0


@asynccontextmanager
async def relay_process(
    tmp_path: Path, *argv: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, ReadyReport]]:
    ready_file = tmp_path / "ready.json"
    ready_file.unlink(missing_ok=True)
    with (tmp_path / "relay.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "faultrelay", "--ready-file", str(ready_file), *argv,
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "EDGE_FAULTRELAY_TOKEN": TOKEN, PARENT_PID_ENV: str(os.getpid())},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while (report := read_ready_file(ready_file)) is None:
            assert process.returncode is None, (tmp_path / "relay.log").read_text()
            assert time.monotonic() < deadline, "no ready file"
            await asyncio.sleep(0.05)
        yield process, report
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_kill_9_and_restart_keep_the_partition_and_sigterm_stops_at_once(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    async with echo_server() as echo:
        link = f"cp-ap-northeast-2=0:127.0.0.1:{echo.port}"
        async with relay_process(tmp_path, "--link", link, "--state-file", str(state)) as (process, report):
            assert report.service == "faultrelay"
            assert report.pid == process.pid
            assert set(report.addresses) == {"admin", "cp-ap-northeast-2"}
            relay = LiveRelay(addresses=report.addresses)
            # The process runs on uvloop: a few megabytes through it, flow control included.
            payload = os.urandom(4 * 1024 * 1024)
            assert await echo_round_trip(relay.port("cp-ap-northeast-2"), payload) == payload
            async with admin_client(relay) as admin:
                await partition(admin, "cp-ap-northeast-2", for_s=120)
            process.kill()  # SIGKILL: no chance to clean up
            await process.wait()

        # The supervisor restarts it on the same ports.
        admin_port = relay.admin.rsplit(":", 1)[1]
        fixed = f"cp-ap-northeast-2={relay.port('cp-ap-northeast-2')}:127.0.0.1:{echo.port}"
        argv = ("--link", fixed, "--admin-port", admin_port, "--state-file", str(state))
        async with relay_process(tmp_path, *argv) as (process, report):
            assert report.addresses == relay.addresses
            assert await is_reset(relay.port("cp-ap-northeast-2"))
            async with admin_client(relay) as admin:
                fault = (await link_view(admin, "cp-ap-northeast-2"))["fault"]
                assert fault["kind"] == "partition"
                assert 100 < fault["remaining_s"] <= 120
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert await asyncio.wait_for(process.wait(), 5) == 0
            assert time.monotonic() - started < 1.0

    log = (tmp_path / "relay.log").read_text()
    assert "fault set on link cp-ap-northeast-2: partition for 120s" in log
    assert "fault restored on link cp-ap-northeast-2: partition" in log
    assert "Traceback" not in log


async def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "faultrelay", "--token", "t", "--link", f"cp={port}:127.0.0.1:1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 1
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("edge-faultrelay: ")
    assert "address already in use" in lines[-1].lower()
    assert "Traceback" not in err.decode()
