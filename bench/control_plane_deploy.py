"""Control plane: deploy-to-ACK latency, and 10,000 node sessions on one control plane.

    .venv/bin/python -m bench.control_plane_deploy [--nodes 10000] [--small-nodes 12] [--rounds 5]
        [--heartbeat-interval 5] [--hold 15] [--agent-processes 4]

Starts a real ``control-plane`` process (fresh data dir, ``--metrics-port``), then node
agents built on the real session client (``cpclient.NodeSession``):

* **12 nodes, 100 KB module** (in this process): for each round, push a new 100 KB module,
  register an app version, and time ``Deploy`` until ``WatchDeployment`` reports every node
  ACKed (the calls ``edgectl deploy`` makes). Each node downloads the module, verifies its
  sha256 and compiles it with wasmtime before ACKing. Budget: under 1 s.
* **10,000 sessions** (in ``--agent-processes`` worker processes, sessions sharing HTTP/2
  connections a hundred each): connect, heartbeat at the control plane's interval; over
  ``--hold`` seconds the control plane's own ``/metrics`` say how many heartbeats it took
  in (at least 95% of those due) and that no node turned unreachable; its CPU per heartbeat
  from /proc. Then deploy a new app version to all and time until all ACKed. Budgets: RSS
  under 1 GB, deploy under 10 s.

Ratios are measured / budget (below 1.0 is within budget). Exit status 1 when a budget is
missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import grpc
import wasmtime
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import CpuClock
from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, SessionSettings
from cpclient.backoff import Backoff
from cpclient.operator import OperatorClient as Client
from protos.edgecdn.v1 import apps_pb2, common_pb2, deployments_pb2, nodes_pb2
from simulator.supervisor import ChildSpec, RunningChild, Supervisor

SMALL_BUDGET_S = 1.0
LARGE_BUDGET_S = 10.0
RSS_BUDGET_MB = 1024.0
CONNECT_TIMEOUT_S = 180.0
TOKEN_ENV = "BENCH_NODE_TOKEN"
# Of the heartbeats the sessions should send over the hold, the share the control plane
# must have taken in (a few are in flight at either end of the window).
HEARTBEATS_SUSTAINED = 0.95
SESSIONS_PER_CHANNEL = 100


def module_of(size: int, marker: int) -> bytes:
    """A valid module of about ``size`` bytes; ``marker`` makes each round's digest new."""
    filler = "".join(f"\\{(marker + i) % 256:02x}" for i in range(max(size - 80, 0)))
    return bytes(
        wasmtime.wat2wasm(f'(module (memory 4) (data (i32.const 0) "{filler}") (func (export "_start")))')
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def release(client: Client, name: str, version: str, data: bytes) -> None:
    info = await client.push_module(data, name=name, abi=common_pb2.ABI_WAGI, progress=lambda _: None)
    app = apps_pb2.AppVersion(
        name=name,
        version=version,
        routes=[apps_pb2.Route(path="/", module="main")],
        modules=[apps_pb2.ModuleRef(name="main", sha256=info.sha256, abi=common_pb2.ABI_WAGI)],
    )
    await client.register_app(app)


async def deploy_and_wait(
    client: Client, name: str, version: str, regions: list[str], expected: int, *, watch_s: float = 60
) -> float:
    started = time.perf_counter()
    deployment = await client.deploy(name, version, common_pb2.Selector(regions=regions))
    last = deployment
    async for update in client.watch_deployment(deployment.id, watch_s):
        last = update
    elapsed = time.perf_counter() - started
    acked = sum(1 for p in last.nodes if p.state == deployments_pb2.NodeProgress.STATE_ACKED)
    if acked != expected:
        raise RuntimeError(f"deployment {deployment.id}: {acked} of {expected} nodes ACKed")
    return elapsed


class Fleet:
    """Many node agents in this process, a few shared channels."""

    def __init__(
        self,
        address: str,
        token: str,
        count: int,
        *,
        compile_modules: bool,
        regions: int | list[str] = 12,
        prefix: str = "bench",
        first: int = 0,
    ) -> None:
        # ``regions``: their names, or how many (region-0, region-1, ...).
        self.regions = [f"region-{i}" for i in range(regions)] if isinstance(regions, int) else regions
        self.engine = wasmtime.Engine()
        self.compile = compile_modules
        self.channels = [
            grpc.aio.insecure_channel(address) for _ in range(max(1, -(-count // SESSIONS_PER_CHANNEL)))
        ]
        settings = SessionSettings(target=address, token=token, backoff=Backoff(initial_s=0.2, maximum_s=2))
        self.sessions = [
            NodeSession(
                settings,
                NodeIdentity(
                    node_id=f"{prefix}-{first + i:04d}", region=self.regions[(first + i) % len(self.regions)]
                ),
                apply=self.apply,
                store=MemoryModuleStore(),
                channel=self.channels[i // SESSIONS_PER_CHANNEL],
            )
            for i in range(count)
        ]
        self.tasks: list[asyncio.Task[None]] = []

    def apply(self, assignment: nodes_pb2.Assignment, modules: Mapping[str, bytes]) -> None:
        if self.compile:
            for data in modules.values():
                wasmtime.Module(self.engine, data)

    async def start(self) -> float:
        started = time.perf_counter()
        self.tasks = [asyncio.create_task(s.run(), name=s.identity.node_id) for s in self.sessions]
        await asyncio.gather(*(s.wait_until(lambda x: x.connected, CONNECT_TIMEOUT_S) for s in self.sessions))
        return time.perf_counter() - started

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)
        for channel in self.channels:
            await channel.close()


class AgentProcesses:
    """The large fleet, spread over ``processes`` worker processes (this module's ``--worker``):
    a real fleet is 10,000 processes, and one Python process driving 10,000 sessions measures
    its own event loop rather than the control plane's."""

    def __init__(self, address: str, token: str, count: int, processes: int) -> None:
        self.regions = [f"region-{i}" for i in range(12)]
        self._address, self._token, self._count, self._processes = address, token, count, processes
        self._children: list[asyncio.subprocess.Process] = []

    async def start(self) -> float:
        """Start every worker; the seconds until all their sessions are connected."""
        started = time.perf_counter()
        share = -(-self._count // self._processes)
        for first in range(0, self._count, share):
            self._children.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.control_plane_deploy", "--worker",
                    "--address", self._address, "--first", str(first),
                    "--nodes", str(min(share, self._count - first)),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, TOKEN_ENV: self._token},
                )
            )  # fmt: skip
        for child in self._children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), CONNECT_TIMEOUT_S + 10)
            if not line.startswith(b"connected"):
                raise RuntimeError(
                    f"an agent process failed to connect its sessions (exit {child.returncode})"
                )
        return time.perf_counter() - started

    def cpu_seconds(self) -> float:
        """CPU the agent processes have used so far (what the simulated nodes cost the machine)."""
        return sum(cpu_seconds(child.pid) for child in self._children)

    async def stop(self) -> None:
        for child in self._children:
            assert child.stdin is not None
            child.stdin.close()  # the worker stops its sessions when its stdin closes
        await asyncio.gather(*(asyncio.wait_for(child.wait(), 30) for child in self._children))


async def worker(args: argparse.Namespace) -> None:
    """One agent process: ``--nodes`` sessions from ``--first``; says ``connected`` on stdout
    once all are, and stops when stdin closes."""
    fleet = Fleet(args.address, os.environ[TOKEN_ENV], args.nodes, compile_modules=False, first=args.first)
    # From the start: a parent that dies (its end of the pipe closes) leaves no agents behind.
    parent_gone = asyncio.ensure_future(asyncio.to_thread(sys.stdin.read))
    connecting = asyncio.ensure_future(fleet.start())
    await asyncio.wait([parent_gone, connecting], return_when=asyncio.FIRST_COMPLETED)
    if connecting.done() and connecting.exception() is None:
        print("connected", flush=True)
        await parent_gone
    connecting.cancel()
    await fleet.stop()


async def start_control_plane(
    supervisor: Supervisor, data_dir: Path, heartbeat_interval_s: float
) -> tuple[RunningChild, str, str, dict[str, str]]:
    """A real control plane with its /metrics port: (child, gRPC address, /metrics URL, tokens)."""
    child = await supervisor.start(
        ChildSpec(
            name="control-plane",
            argv=(
                sys.executable, "-m", "control_plane", "--data-dir", str(data_dir), "--log-level", "warning",
                "--metrics-port", "0", "--heartbeat-interval", str(heartbeat_interval_s),
            ),
        )
    )  # fmt: skip
    tokens = json.loads((data_dir / "tokens.json").read_text())
    return child, child.report.addresses["grpc"], child.report.addresses["metrics"], tokens


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The control plane's /metrics, as samples by (name, labels)."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (found, pairs), value in samples.items() if found == name and wanted <= set(pairs))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def hold(pid: int, url: str, seconds: float) -> dict[str, float]:
    """Heartbeats the control plane took in over ``seconds``, its CPU, and the worst count of
    nodes it saw as unreachable meanwhile (scraped every second)."""
    before, cpu_before, clock_before = await scrape(url), cpu_seconds(pid), CpuClock.now()
    started = time.perf_counter()
    unreachable = 0.0
    while (elapsed := time.perf_counter() - started) < seconds:
        await asyncio.sleep(min(1.0, seconds - elapsed))
        now = await scrape(url)
        unreachable = max(unreachable, total(now, "control_plane_nodes", status="unreachable"))
    elapsed = time.perf_counter() - started
    after, cpu_after = await scrape(url), cpu_seconds(pid)
    heartbeats = total(after, "control_plane_node_messages_total", kind="heartbeat") - total(
        before, "control_plane_node_messages_total", kind="heartbeat"
    )
    return {
        "heartbeats_per_s": heartbeats / elapsed,
        "cpu_cores": (cpu_after - cpu_before) / elapsed,
        "cpu_us_per_heartbeat": 1e6 * (cpu_after - cpu_before) / max(heartbeats, 1),
        "unreachable_max": unreachable,
        "steal_percent": CpuClock.now().steal_percent_since(clock_before),
    }


async def small_rounds(client: Client, address: str, token: str, args: argparse.Namespace) -> list[float]:
    # Fleets of their own regions: a deployment to the small fleet (which must be ACKed by
    # every node it targets) never reaches the large one, nor the other way.
    small = Fleet(address, token, args.small_nodes, prefix="small", regions=["small"], compile_modules=True)
    await small.start()
    times = []
    for round_ in range(args.rounds):
        await release(client, "bench-small", f"1.{round_}", module_of(100_000, round_))
        times.append(
            await deploy_and_wait(client, "bench-small", f"1.{round_}", small.regions, args.small_nodes)
        )
    await small.stop()
    return times


async def bench(args: argparse.Namespace) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        async with Supervisor(Path(tmp) / "run") as supervisor:
            child, address, url, tokens = await start_control_plane(
                supervisor, Path(tmp) / "cp", args.heartbeat_interval
            )
            async with Client(address, tokens["operator"]) as client:
                times = await small_rounds(client, address, tokens["node"], args)
                results["small_deploy_median_s"] = statistics.median(times)
                results["small_deploy_max_s"] = max(times)

                results["control_plane_rss_idle_mb"] = rss_mb(child.pid)
                large = AgentProcesses(address, tokens["node"], args.nodes, args.agent_processes)
                results["large_connect_s"] = await large.start()
                await asyncio.sleep(2 * args.heartbeat_interval)  # every node has heartbeated
                for key, value in (await hold(child.pid, url, args.hold)).items():
                    results[f"hold_{key}"] = value
                results["large_rss_connected_mb"] = rss_mb(child.pid)
                await release(client, "bench-large", "1.0", module_of(2_000, 7))
                calls_before = await scrape(url)
                cpu_before, agents_before = cpu_seconds(child.pid), large.cpu_seconds()
                load_before = os.getloadavg()[0]
                results["large_deploy_s"] = await deploy_and_wait(
                    # A slow deploy is measured (against its budget), not cut off at 60 s.
                    client,
                    "bench-large",
                    "1.0",
                    large.regions,
                    args.nodes,
                    watch_s=300,
                )
                # The control plane's own work for the deploy (heartbeats included): what it
                # needs of a core, whatever the agents sharing the machine took.
                results["large_deploy_cpu_s"] = cpu_seconds(child.pid) - cpu_before
                results["large_deploy_agents_cpu_s"] = large.cpu_seconds() - agents_before
                results["large_deploy_load"] = load_before
                # The calls the control plane saw during the deploy (its /metrics count every
                # one): a download per node, and no session lost and opened again.
                calls_after = await scrape(url)
                for key, method in (("downloads", "ModuleService/DownloadModule"), ("sessions", "Connect")):
                    results[f"large_deploy_{key}_started"] = sum(
                        value - calls_before.get((name, labels), 0.0)
                        for (name, labels), value in calls_after.items()
                        if name == "control_plane_rpcs_started_total" and method in dict(labels)["method"]
                    )
                results["large_deploy_answer_commits"] = total(
                    calls_after, "control_plane_answer_commits_total"
                ) - total(calls_before, "control_plane_answer_commits_total")
                await asyncio.sleep(1)
                results["large_rss_after_deploy_mb"] = rss_mb(child.pid)
                results["bench_process_rss_mb"] = rss_mb(os.getpid())
                await large.stop()
            await supervisor.stop_all(timeout_s=10)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--small-nodes", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--heartbeat-interval", type=float, default=5.0, help="seconds (the control plane's)")
    parser.add_argument("--hold", type=float, default=15.0, help="seconds heartbeats are counted")
    parser.add_argument("--agent-processes", type=int, default=4, help="processes the large fleet runs in")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args))
        return 0
    results = asyncio.run(bench(args))
    rss = max(results["large_rss_connected_mb"], results["large_rss_after_deploy_mb"])
    expected_rate = args.nodes / args.heartbeat_interval
    small = f"deploy 100 KB to {args.small_nodes} nodes"
    rows = [
        (f"{small} (median)", results["small_deploy_median_s"], SMALL_BUDGET_S, "s"),
        (f"{small} (max)", results["small_deploy_max_s"], SMALL_BUDGET_S, "s"),
        (f"control plane RSS with {args.nodes} sessions", rss, RSS_BUDGET_MB, "MB"),
        (f"deploy to {args.nodes} nodes, all ACKed", results["large_deploy_s"], LARGE_BUDGET_S, "s"),
    ]  # fmt: skip
    print(f"{'measure':<48} {'value':>10} {'budget':>8} {'ratio':>6}")
    for label, value, budget, unit in rows:
        print(f"{label:<48} {value:>8.3f}{unit:>2} {budget:>6g}{unit:>2} {value / budget:>6.2f}")
    sustained = results["hold_heartbeats_per_s"] / expected_rate
    print(
        f"heartbeats taken in: {results['hold_heartbeats_per_s']:.0f}/s of {expected_rate:.0f}/s "
        f"({sustained:.2f}; every {args.heartbeat_interval:g} s), most nodes unreachable at once: "
        f"{results['hold_unreachable_max']:.0f}; control plane CPU {results['hold_cpu_cores']:.2f} cores, "
        f"{results['hold_cpu_us_per_heartbeat']:.0f} us per heartbeat; "
        f"steal {results['hold_steal_percent']:.1f}%"
    )
    # The deploy's own work: its CPU less what heartbeats took at the rate measured in the hold
    # (a deploy slowed by a busy machine takes in more heartbeats meanwhile).
    deploy_own_s = results["large_deploy_cpu_s"] - results["hold_cpu_cores"] * results["large_deploy_s"]
    print(
        f"control plane CPU during the deploy: {results['large_deploy_cpu_s']:.1f} s "
        f"({results['large_deploy_cpu_s'] / results['large_deploy_s']:.2f} cores, "
        f"{1e3 * results['large_deploy_cpu_s'] / args.nodes:.2f} ms per node, heartbeats included; "
        f"{deploy_own_s:.1f} s, {1e3 * deploy_own_s / args.nodes:.2f} ms per node without them); "
        f"the agents' {results['large_deploy_agents_cpu_s']:.1f} s; load at its start "
        f"{results['large_deploy_load']:.2f}; calls started during it: "
        f"{results['large_deploy_downloads_started']:.0f} DownloadModule, "
        f"{results['large_deploy_sessions_started']:.0f} Connect; "
        f"{results['large_deploy_answer_commits']:.0f} commits stored the ACKs"
    )
    print(
        f"(connect {args.nodes} sessions: {results['large_connect_s']:.2f} s; control plane idle RSS "
        f"{results['control_plane_rss_idle_mb']:.0f} MB; "
        f"bench process RSS {results['bench_process_rss_mb']:.0f} MB; load {os.getloadavg()[0]:.2f})"
    )
    held = sustained >= HEARTBEATS_SUSTAINED and results["hold_unreachable_max"] == 0
    return 0 if held and all(value <= budget for _, value, budget, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
