"""Control plane: deploy-to-ACK latency and many node sessions in one process.

    .venv/bin/python -m bench.control_plane_deploy [--nodes 1000] [--small-nodes 12] [--rounds 5]

Starts a real ``control-plane`` process (fresh data dir), then, in this process, node
agents built on the real session client (``cpclient.NodeSession``):

* **12 nodes, 100 KB module**: for each round, push a new 100 KB module, register an app
  version, and time ``Deploy`` until ``WatchDeployment`` reports every node ACKed (the same
  calls ``edgectl deploy`` makes). Each node downloads the module, verifies its sha256 and
  compiles it with wasmtime before ACKing. Budget: under 1 s.
* **1,000 sessions**: 1,000 node sessions (sharing a few HTTP/2 connections, as many agents
  per process do) connect and heartbeat every second; measure the control plane's RSS, then
  deploy a new app version to all of them and time until all 1,000 ACKed. Budgets: RSS
  under 300 MB, deploy under 3 s.

Ratios are measured / budget (below 1.0 is within budget). Exit status 1 when a budget is
missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import grpc
import wasmtime

from bench.harness import start_control_plane
from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, SessionSettings
from cpclient.backoff import Backoff
from cpclient.operator import OperatorClient as Client
from protos.edgecdn.v1 import apps_pb2, common_pb2, deployments_pb2, nodes_pb2
from simulator.supervisor import Supervisor

SMALL_BUDGET_S = 1.0
LARGE_BUDGET_S = 3.0
RSS_BUDGET_MB = 300.0
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


async def deploy_and_wait(client: Client, name: str, version: str, expected: int) -> float:
    started = time.perf_counter()
    deployment = await client.deploy(name, version, common_pb2.Selector(all=True))
    last = deployment
    async for update in client.watch_deployment(deployment.id, 60):
        last = update
    elapsed = time.perf_counter() - started
    acked = sum(1 for p in last.nodes if p.state == deployments_pb2.NodeProgress.STATE_ACKED)
    if acked != expected:
        raise RuntimeError(f"deployment {deployment.id}: {acked} of {expected} nodes ACKed")
    return elapsed


class Fleet:
    """Many node agents in this process, a few shared channels."""

    def __init__(
        self, address: str, token: str, count: int, *, compile_modules: bool, regions: int = 12
    ) -> None:
        self.engine = wasmtime.Engine()
        self.compile = compile_modules
        self.channels = [
            grpc.aio.insecure_channel(address) for _ in range(max(1, -(-count // SESSIONS_PER_CHANNEL)))
        ]
        settings = SessionSettings(target=address, token=token, backoff=Backoff(initial_s=0.2, maximum_s=2))
        self.sessions = [
            NodeSession(
                settings,
                NodeIdentity(node_id=f"bench-{i:04d}", region=f"region-{i % regions}"),
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
        await asyncio.gather(*(s.wait_until(lambda x: x.connected, 60) for s in self.sessions))
        return time.perf_counter() - started

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.wait(self.tasks)
        for channel in self.channels:
            await channel.close()


async def bench(args: argparse.Namespace) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        data_dir = Path(tmp) / "cp"
        async with Supervisor(Path(tmp) / "run") as supervisor:
            control_plane = await start_control_plane(supervisor, data_dir)
            child = control_plane.child
            address, tokens = control_plane.address, control_plane.tokens
            async with Client(address, tokens["operator"]) as client:
                small = Fleet(address, tokens["node"], args.small_nodes, compile_modules=True)
                await small.start()
                times = []
                for round_ in range(args.rounds):
                    await release(client, "bench-small", f"1.{round_}", module_of(100_000, round_))
                    times.append(
                        await deploy_and_wait(client, "bench-small", f"1.{round_}", args.small_nodes)
                    )
                await small.stop()
                results["small_deploy_median_s"] = statistics.median(times)
                results["small_deploy_max_s"] = max(times)

                rss_before = rss_mb(child.pid)
                large = Fleet(address, tokens["node"], args.nodes, compile_modules=False)
                results["large_connect_s"] = await large.start()
                await asyncio.sleep(2)  # a couple of heartbeat rounds
                results["large_rss_connected_mb"] = rss_mb(child.pid)
                await release(client, "bench-large", "1.0", module_of(2_000, 7))
                results["large_deploy_s"] = await deploy_and_wait(client, "bench-large", "1.0", args.nodes)
                await asyncio.sleep(1)
                results["large_rss_after_deploy_mb"] = rss_mb(child.pid)
                results["control_plane_rss_idle_mb"] = rss_before
                results["bench_process_rss_mb"] = rss_mb(os.getpid())
                await large.stop()
            await supervisor.stop_all(timeout_s=10)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--small-nodes", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = asyncio.run(bench(args))
    rss = max(results["large_rss_connected_mb"], results["large_rss_after_deploy_mb"])
    rows = [
        (
            f"deploy 100 KB to {args.small_nodes} nodes (median)",
            results["small_deploy_median_s"],
            SMALL_BUDGET_S,
            "s",
        ),
        (
            f"deploy 100 KB to {args.small_nodes} nodes (max)",
            results["small_deploy_max_s"],
            SMALL_BUDGET_S,
            "s",
        ),
        (f"control plane RSS with {args.nodes} sessions", rss, RSS_BUDGET_MB, "MB"),
        (f"deploy to {args.nodes} nodes, all ACKed", results["large_deploy_s"], LARGE_BUDGET_S, "s"),
    ]
    print(f"{'measure':<48} {'value':>10} {'budget':>8} {'ratio':>6}")
    for label, value, budget, unit in rows:
        print(f"{label:<48} {value:>8.3f}{unit:>2} {budget:>6g}{unit:>2} {value / budget:>6.2f}")
    print(
        f"(connect {args.nodes} sessions: {results['large_connect_s']:.2f} s; control plane idle RSS "
        f"{results['control_plane_rss_idle_mb']:.0f} MB; "
        f"bench process RSS {results['bench_process_rss_mb']:.0f} MB)"
    )
    return 0 if all(value <= budget for _, value, budget, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
