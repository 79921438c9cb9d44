"""Shared pieces of the benchmarks: real processes on free ports, wrk runs, RSS, reports.

Benchmarks compare EdgeCDN with a peer side by side in one run and report ratios, so
machine noise hits both sides alike. Peers that are not Python packages (wrk, nginx,
workerd) are located here, with the command that installs each when it is missing.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from simulator.supervisor import ChildSpec, RunningChild, Supervisor

REPO_ROOT = Path(__file__).resolve().parent.parent
WRK_INSTALL = "apt-get install -y wrk"


class PeerMissingError(RuntimeError):
    """A peer tool is not installed; the message says how to install it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WrkResult:
    requests_per_second: float
    latency_p50_ms: float
    latency_p99_ms: float
    errors: int
    non_2xx: int


def require_tool(name: str, install: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PeerMissingError(f"{name} is not installed; install it with: {install}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Read requests/s and latency percentiles from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rps is None or p50 is None or p99 is None:
        raise ValueError(f"cannot parse wrk output:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        latency_p50_ms=_ms(p50.group(1)),
        latency_p99_ms=_ms(p99.group(1)),
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


async def run_wrk(url: str, *, connections: int = 50, threads: int = 1, seconds: float = 10.0) -> WrkResult:
    wrk = require_tool("wrk", WRK_INSTALL)
    process = await asyncio.create_subprocess_exec(
        wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    return parse_wrk(output.decode())


@dataclass(frozen=True, slots=True)
class CpuClock:
    """The machine's CPU time so far (all CPUs, in ticks), and how much of it the hypervisor
    gave to other guests ("steal", /proc/stat)."""

    total: int
    steal: int

    @classmethod
    def now(cls) -> CpuClock:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(value) for value in fields[:8]]  # user .. steal; guest time is inside user
        return cls(total=sum(ticks), steal=ticks[7] if len(ticks) > 7 else 0)

    def steal_percent_since(self, earlier: CpuClock) -> float:
        """Percent of the CPU time between ``earlier`` and this reading that was stolen.

        A VM's host can take a core away for seconds; a run during which it did is slower
        for reasons that have nothing to do with the code, so benchmarks print this beside
        their figures rather than leave readers to guess.
        """
        total = self.total - earlier.total
        return 100.0 * (self.steal - earlier.steal) / total if total > 0 else 0.0


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPlaneProcess:
    """A real control-plane process of a benchmark: its address and the tokens it generated."""

    child: RunningChild
    address: str
    tokens: dict[str, str]


async def start_control_plane(supervisor: Supervisor, data_dir: Path) -> ControlPlaneProcess:
    """Start ``python -m control_plane`` on a free port with a fresh ``data_dir``."""
    child = await supervisor.start(
        ChildSpec(
            name="control-plane",
            argv=(
                sys.executable,
                "-m",
                "control_plane",
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
            ),
        )
    )
    tokens = json.loads((data_dir / "tokens.json").read_text())
    return ControlPlaneProcess(child=child, address=child.report.addresses["grpc"], tokens=tokens)
