"""One control plane per port and per data directory (issue 24, finding 4).

gRPC binds with SO_REUSEPORT unless told not to, so a second control plane on a live port
used to run beside the first, sharing its connections and its data directory. Now the port
is not shared and the data directory is locked; the lock dies with its process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from control_plane.exclusive import LOCK_FILE_NAME, DataDirInUseError, DataDirLock, describe_holder
from simulator.supervisor import ChildSpec, RunningChild, Supervisor


def _spec(name: str, data_dir: Path, port: int = 0) -> ChildSpec:
    argv = (sys.executable, "-m", "control_plane", "--port", str(port), "--data-dir", str(data_dir))
    return ChildSpec(name=name, argv=argv)


def _port(child: RunningChild) -> int:
    return int(child.report.addresses["grpc"].rsplit(":", 1)[1])


async def _run_refused(data_dir: Path, port: int) -> str:
    """Start a control plane that must refuse to run; its stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_plane", "--port", str(port), "--data-dir", str(data_dir),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = stderr.decode()
    assert process.returncode == 1, text
    assert "Traceback" not in text
    return text


async def test_a_second_control_plane_on_a_live_port_is_refused(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    first = await supervisor.start(_spec("first", tmp_path / "a"))
    port = _port(first)
    text = await _run_refused(tmp_path / "b", port)
    assert f"control-plane: cannot listen on 127.0.0.1:{port}: the port is in use by another process" in text
    assert first.process.returncode is None  # the first one is untouched


async def test_a_second_control_plane_on_the_same_data_dir_is_refused_naming_the_first(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    first = await supervisor.start(_spec("first", tmp_path / "cp"))
    text = await _run_refused(tmp_path / "cp", 0)
    assert f"control-plane: data directory {tmp_path / 'cp'} is in use by another control plane" in text
    assert f"(pid {first.pid}, serving gRPC on {first.report.addresses['grpc']})" in text
    assert first.process.returncode is None


async def test_after_kill_9_a_new_control_plane_starts_at_once_on_the_same_port_and_dir(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    first = await supervisor.start(_spec("first", tmp_path / "cp"))
    port = _port(first)
    os.kill(first.pid, signal.SIGKILL)
    await first.process.wait()
    # No lock wait and no stale-file clean-up: the kernel dropped the lock with the process.
    second = await supervisor.start(_spec("second", tmp_path / "cp", port))
    assert second.report.addresses["grpc"] == f"127.0.0.1:{port}"
    facts = json.loads((tmp_path / "cp" / LOCK_FILE_NAME).read_text())
    assert facts["pid"] == second.pid


def test_the_lock_refuses_a_second_holder_in_the_same_process_and_frees_on_release(tmp_path: Path) -> None:
    with DataDirLock(tmp_path) as first:
        first.describe(grpc="127.0.0.1:7000")
        with pytest.raises(DataDirInUseError) as caught:
            DataDirLock(tmp_path).acquire()
        assert caught.value.holder == f"pid {os.getpid()}, serving gRPC on 127.0.0.1:7000"
    again = DataDirLock(tmp_path)
    again.acquire()  # released on exit
    assert again.held
    again.release()
    assert not again.held


def test_a_stale_lock_file_does_not_block(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE_NAME).write_text(json.dumps({"pid": 1, "started_at": time.time()}))
    with DataDirLock(tmp_path) as lock:
        assert lock.held
        assert json.loads((tmp_path / LOCK_FILE_NAME).read_text())["pid"] == os.getpid()


@pytest.mark.parametrize(
    ("text", "described"),
    [
        ('{"pid": 42}', "pid 42"),
        ('{"pid": 42, "grpc": "127.0.0.1:1"}', "pid 42, serving gRPC on 127.0.0.1:1"),
        ("", "pid not yet written"),
        ('{"pid": "42"}', "pid not yet written"),
        ("[1]", "pid not yet written"),
        ("\xff garbage", "pid not yet written"),
    ],
)
def test_the_holder_is_described_from_whatever_the_file_holds(text: str, described: str) -> None:
    assert describe_holder(text) == described
