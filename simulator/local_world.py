"""A whole local world as one object, for benchmarks and whole-system tests.

It runs ``edgecdn up`` as a real child process (its own session, a state directory of
its own), waits for world.json, and runs the world's other commands against it the way a
user types them: ``edgecdn load``, ``edgecdn chaos``, ``edgectl``. Nothing is called
in-process, so what it measures is what a user gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from cpclient import ControlPlaneCallError
from cpclient.operator import OperatorClient
from protos.edgecdn.v1 import nodes_pb2
from runtime.errors import WorldStateError
from runtime.world_state import STATE_DIR_ENV, STATE_FILE_NAME, WorldState, read_world_state

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class LocalWorld:
    """``async with LocalWorld(state_dir) as world:`` a running world; stopped (SIGTERM) on exit."""

    def __init__(self, state_dir: Path, *, world_file: Path | None = None, cwd: Path | None = None) -> None:
        self.state_dir = state_dir
        self._world_file = world_file
        self._cwd = cwd
        self._process: asyncio.subprocess.Process | None = None
        self._log = state_dir.parent / f"{state_dir.name}-up.log"

    @property
    def env(self) -> Mapping[str, str]:
        return {**os.environ, STATE_DIR_ENV: str(self.state_dir)}

    @property
    def state(self) -> WorldState:
        """world.json as it is now (the supervisor rewrites it on every exit and restart)."""
        return read_world_state(self.state_dir / STATE_FILE_NAME)

    async def __aenter__(self) -> LocalWorld:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        extra = ("--world", str(self._world_file)) if self._world_file else ()
        with self._log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "simulator", "up", "--state-dir", str(self.state_dir), *extra,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                cwd=self._cwd, env=dict(self.env), start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process.returncode is not None:
                raise RuntimeError(f"edgecdn up exited ({self._process.returncode}): {self.log_tail()}")
            with contextlib.suppress(WorldStateError):
                self.state  # noqa: B018 - readable once every process is ready
                return self
            if time.monotonic() > deadline:
                await self.stop()
                raise RuntimeError(f"edgecdn up was not ready in {START_TIMEOUT_S:g}s: {self.log_tail()}")
            await asyncio.sleep(0.05)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def stop(self) -> int | None:
        """SIGTERM the world; SIGKILL its whole session when it takes longer than it may."""
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        return process.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def run(self, *argv: str, timeout_s: float = 120.0) -> CommandResult:
        """Run a command (``edgecdn ...`` or ``edgectl ...``) against this world and wait for it."""
        process = await self.spawn(*argv)
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return CommandResult(code=process.returncode, out=out.decode(), err=err.decode())

    async def spawn(self, *argv: str) -> asyncio.subprocess.Process:
        """Start a command against this world (``edgecdn load ...`` runs beside the faults)."""
        program, *args = argv
        module = {"edgecdn": "simulator", "edgectl": "control_plane.edgectl"}[program]
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=self._cwd, env=dict(self.env),
        )  # fmt: skip

    async def nodes(self) -> dict[str, dict[str, Any]]:
        """What the control plane says of every node, by node id: region, ``status`` (ready,
        unreachable, disconnected) and ``app_version``, as ``edgectl nodes list -o json``
        has them. Asked in-process, so a poll measures the world, not a CLI's start-up."""
        state = self.state
        try:
            async with OperatorClient(state.control_plane_address, state.tokens.get("viewer", "")) as client:
                listed = await client.list_nodes()
        except ControlPlaneCallError as exc:
            raise RuntimeError(f"listing nodes: {exc.message}") from exc
        return {
            node.node_id: {
                "node_id": node.node_id,
                "region": node.region,
                "status": nodes_pb2.NodeStatus.Name(node.status).removeprefix("NODE_STATUS_").lower(),
                "app_version": node.app_version,
            }
            for node in listed
        }
