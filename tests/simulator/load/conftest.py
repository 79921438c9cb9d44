"""Real servers for the load generator's tests: the echo server and a small world."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from geo.world import World, load_world
from tests.conftest import REPO_ROOT

WORLD_FILE = REPO_ROOT / "deploy" / "local" / "world.toml"


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    url: str
    pid: int


def start_echo_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = tmp / "echo-ready.json"
    with (tmp / "echo.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.simulator.load.echo_server", "--ready-file", str(ready)],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + 15
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"echo server did not start: {(tmp / 'echo.log').read_text()}")
        time.sleep(0.02)
    url: str = json.loads(ready.read_text())["addresses"]["http"]
    return process, url


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    process, url = start_echo_server(tmp_path_factory.mktemp("echo"))
    try:
        yield Server(url=url, pid=process.pid)
    finally:
        os.kill(process.pid, signal.SIGCONT)  # in case a test left it stopped
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def world() -> World:
    return load_world(WORLD_FILE)
