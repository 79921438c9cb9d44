"""How the world heals, under load: faults through `edgecdn chaos` beside `edgecdn load`.

A real world (`edgecdn up`, Seoul with two edge nodes so a node and a region are
different faults) takes open-loop traffic through the router at ``--rate`` (300 req/s)
while one fault at a time hits it:

- the control plane SIGKILLed: failed requests; time until every node is ready again;
- one of Seoul's nodes SIGKILLed: the share of that minute's requests that failed; time
  until it is restarted and routed to again;
- all of Seoul's nodes SIGKILLed: its clients fail over (``reason=failover``); the share
  that failed; time from their return (the supervisor's restart) until Korea is routed to
  Seoul again;
- Seoul partitioned from the control plane for ``--partition`` (60 s): failed requests; a
  deploy made during the partition, and how long after the heal Seoul runs it;
- with ``--soak`` (10 m), the whole world under a scenario with a fault every 30 s: failed
  requests, and every process's RSS growth after warm-up.

These are budgets, not ratios: the peers of this part (Kubernetes' restart policy,
Toxiproxy, Chaos Mesh) are harnesses, not servers to race. Exit 1 when a budget is missed.

    python -m bench.chaos [--rate 300] [--partition 60s] [--soak 10m] [--keep-reports DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import REPO_ROOT, rss_bytes
from geo.world import World, load_world
from runtime.durations import parse_duration
from runtime.events import read_events
from simulator.local_world import LocalWorld

SEOUL = "ap-northeast-2"
MIX = "KR=40,JP=15,US=15,DE=15,IN=15"


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    name: str
    value: float
    budget: float
    unit: str

    @property
    def met(self) -> bool:
        return self.value <= self.budget


def write_world_file(directory: Path) -> Path:
    """The default world, with a second edge node in Seoul."""
    text = (REPO_ROOT / "deploy" / "local" / "world.toml").read_text()
    seoul = text.index(f'id = "{SEOUL}"')
    nodes = text.index("edge_nodes = 1", seoul)
    path = directory / "world.toml"
    path.write_text(text[:nodes] + "edge_nodes = 2" + text[nodes + len("edge_nodes = 1") :])
    return path


class Bench:
    def __init__(self, world: LocalWorld, geo: World, *, rate: str, out_dir: Path) -> None:
        self.world = world
        self.geo = geo
        self.rate = rate
        self.out_dir = out_dir
        self.figures: list[Figure] = []

    def figure(self, name: str, value: float, budget: float, unit: str) -> None:
        self.figures.append(Figure(name=name, value=value, budget=budget, unit=unit))
        mark = "met" if value <= budget else "MISSED"
        print(f"  {name}: {value:.3f} {unit} (budget {budget:g} {unit}) {mark}", flush=True)

    async def load(
        self, name: str, duration_s: float, mix: str = MIX
    ) -> Callable[[], Awaitable[dict[str, Any]]]:
        """Start `edgecdn load`; the returned coroutine function waits for its report."""
        out = self.out_dir / f"{name}.json"
        process = await self.world.spawn(
            "edgecdn", "load", "--mix", mix, "--rate", self.rate, "--duration", f"{duration_s}s",
            "--out", str(out), "--html", str(out.with_suffix(".html")),
        )  # fmt: skip

        async def report() -> dict[str, Any]:
            _, err = await asyncio.wait_for(process.communicate(), duration_s + 60)
            if process.returncode != 0:
                raise RuntimeError(f"edgecdn load failed: {err.decode()[-500:]}")
            data: dict[str, Any] = json.loads(out.read_text())
            return data

        return report

    async def chaos(self, *args: str) -> None:
        result = await self.world.run("edgecdn", "chaos", *args)
        if result.code != 0:
            raise RuntimeError(f"edgecdn chaos {' '.join(args)}: {result.err}")

    async def until(self, predicate: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> float:
        started = time.monotonic()
        while not await predicate():
            if time.monotonic() - started > timeout_s:
                return float("inf")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def route_of(self, country: str) -> str:
        router = self.world.state.router_url
        connector = aiohttp.TCPConnector(local_addr=(self.geo.country(country).client_address(7), 0))
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=2)) as client,
                client.get(f"{router}/hello") as response,
            ):
                return response.headers.get("x-edge-route", "")
        except (aiohttp.ClientError, TimeoutError):
            return ""

    async def seoul_serves_korea(self) -> bool:
        return f"region={SEOUL};" in await self.route_of("KR")

    async def all_nodes_ready(self) -> bool:
        try:
            nodes = await self.world.nodes()
        except RuntimeError:
            return False
        return len(nodes) == len(self.world.state.edge_nodes) and all(
            node["status"] == "ready" for node in nodes.values()
        )

    @staticmethod
    def failed_share(report: dict[str, Any]) -> float:
        totals = report["totals"]
        failed = float(totals["errors"] + totals.get("unanswered", 0))
        return failed / max(1, int(totals["requests"]))


async def control_plane_kill(bench: Bench) -> None:
    print("control plane SIGKILLed under load", flush=True)
    report = await bench.load("control-plane-kill", 40)
    await asyncio.sleep(10)
    address = bench.world.state.control_plane_address
    await bench.chaos("kill", "control-plane")
    ready_s = await bench.until(bench.all_nodes_ready)
    result = await report()
    bench.figure("control plane kill: failed requests", result["totals"]["errors"], 0, "requests")
    bench.figure("control plane kill: every node ready again", ready_s, 5, "s")
    moved = 0.0 if bench.world.state.control_plane_address == address else 1.0
    bench.figure("control plane kill: restarted on another address", moved, 0, "")


async def node_kill(bench: Bench) -> None:
    print(f"one of {SEOUL}'s nodes SIGKILLed under load", flush=True)
    report = await bench.load("node-kill", 60)
    await asyncio.sleep(10)
    node = f"{SEOUL}-a"
    before = _restarts(bench, node)
    await bench.chaos("kill", node)

    async def back_and_routed() -> bool:
        if _restarts(bench, node) <= before:
            return False
        status = await _router_status(bench)
        return any(n["node_id"] == node and n["routable"] for r in status["regions"] for n in r["nodes"])

    back_s = await bench.until(back_and_routed)
    result = await report()
    bench.figure("node kill: failed share of the minute", bench.failed_share(result) * 100, 0.5, "%")
    bench.figure("node kill: restarted and routed to again", back_s, 5, "s")


async def region_kill(bench: Bench) -> None:
    print(f"all of {SEOUL}'s nodes SIGKILLed under load", flush=True)
    report = await bench.load("region-kill", 60)
    await asyncio.sleep(10)
    killed_at = time.time()
    await bench.chaos("kill", SEOUL)
    failover = await bench.until(lambda: _route_says(bench, "KR", "reason=failover"), timeout_s=10)
    returned = await _last_restart_after(bench, killed_at)
    await bench.until(bench.seoul_serves_korea)
    back_since_return = time.time() - returned if returned else float("inf")
    result = await report()
    share = result["countries"]["KR"]["served_by"]
    print(f"  Korea served by: {share}; failover seen after {failover:.2f}s", flush=True)
    bench.figure("region kill: failed share of the minute", bench.failed_share(result) * 100, 0.5, "%")
    bench.figure("region kill: back to nearest after its return", back_since_return, 3, "s")


async def partition(bench: Bench, seconds: float) -> None:
    print(f"{SEOUL} partitioned from the control plane for {seconds:g}s under load", flush=True)
    report = await bench.load("partition", seconds + 25)
    await asyncio.sleep(5)
    cut = await bench.world.spawn(
        "edgecdn", "chaos", "partition", SEOUL, "--from", "control-plane", "--for", f"{seconds}s"
    )
    await asyncio.sleep(min(10.0, seconds / 2))
    manifest = _app_copy(bench.out_dir, "1.1.0")
    for argv in (
        ("apps", "register", str(manifest)),
        ("deploy", "geo-hello@1.1.0", "--regions", SEOUL, "--no-wait"),
    ):
        done = await bench.world.run("edgectl", *argv)
        if done.code != 0:
            raise RuntimeError(f"edgectl {' '.join(argv)}: {done.err}")
    await cut.communicate()

    async def seoul_on_new_version() -> bool:
        nodes = await bench.world.nodes()
        seoul = [n for n in nodes.values() if n["region"] == SEOUL]
        return bool(seoul) and all(n["status"] == "ready" and n["app_version"] == "1.1.0" for n in seoul)

    resync_s = await bench.until(seoul_on_new_version, timeout_s=30)
    result = await report()
    bench.figure("partition: failed requests", result["totals"]["errors"], 0, "requests")
    bench.figure("partition: deploy made meanwhile arrives after the heal", resync_s, 2, "s")
    await bench.world.run("edgectl", "deploy", "geo-hello@1.0.0", "--regions", SEOUL)


async def soak(bench: Bench, seconds: float) -> None:
    print(f"soak: {seconds:g}s with a fault every 30 s", flush=True)
    scenario = bench.out_dir / "soak.toml"
    scenario.write_text(_soak_scenario(seconds))
    report = await bench.load("soak", seconds + 5)
    chaos = await bench.world.spawn("edgecdn", "chaos", "run", str(scenario))
    await asyncio.sleep(60)  # warm-up
    warm = _rss(bench)
    played, _ = await chaos.communicate()
    print("  " + "\n  ".join(played.decode().splitlines()), flush=True)
    result = await report()
    end = _rss(bench)
    same = {name: (warm[name], end[name]) for name in warm if name in end and warm[name][0] == end[name][0]}
    growth = {name: (after[1] - before[1]) / before[1] * 100 for name, (before, after) in same.items()}
    worst = max(growth.items(), key=lambda item: item[1])
    rounded = {name: round(value, 1) for name, value in growth.items()}
    print(f"  RSS growth by process (not restarted during the soak): {json.dumps(rounded)}")
    bench.figure("soak: failed share", bench.failed_share(result) * 100, 0.5, "%")
    bench.figure(f"soak: worst RSS growth after warm-up ({worst[0]})", worst[1], 10, "%")


def _soak_scenario(seconds: float) -> str:
    cycle = [
        ('action = "kill"', 'target = "eu-central-1-a"'),
        ('action = "wan"', 'target = "us-east-1"\nlatency = "200ms"\nloss = "5%"\nfor = "10s"'),
        ('action = "partition"', 'target = "ap-south-1"\nfor = "15s"'),
        ('action = "freeze"', 'target = "sa-east-1-a"\nfor = "3s"'),
        ('action = "kill"', 'target = "control-plane"'),
        ('action = "kill"', f'target = "{SEOUL}-b"'),
    ]
    faults = []
    for index, at in enumerate(range(30, int(seconds) - 20, 30)):
        action, rest = cycle[index % len(cycle)]
        faults.append(f'[[fault]]\nat = "{at}s"\n{action}\n{rest}\n')
    return f'name = "soak: a fault every 30 s"\nduration = "{seconds}s"\n' + "\n".join(faults)


def _rss(bench: Bench) -> dict[str, tuple[int, int]]:
    found = {}
    for entry in bench.world.state.processes:
        try:
            found[entry.name] = (entry.pid, rss_bytes(entry.pid))
        except (OSError, ValueError):
            continue
    return found


def _restarts(bench: Bench, node: str) -> int:
    entry = bench.world.state.process(f"edge-node {node}")
    return entry.restarts if entry is not None and entry.state == "up" else -1


async def _router_status(bench: Bench) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"{bench.world.state.router_url}/_router/status") as r,
    ):
        data: dict[str, Any] = await r.json()
        return data


async def _route_says(bench: Bench, country: str, text: str) -> bool:
    return text in await bench.route_of(country)


async def _last_restart_after(bench: Bench, since: float) -> float | None:
    """Wall time of the last restart of a Seoul node after ``since``, once all are back."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = read_events(bench.world.state_dir / "chaos-events.jsonl", since=since)
        restarts = [e for e in events if e.kind == "restart" and SEOUL in e.target]
        if len({e.target for e in restarts}) == sum(
            1 for n in bench.world.state.edge_nodes if n.region == SEOUL
        ):
            return max(e.ts for e in restarts)
        await asyncio.sleep(0.05)
    return None


def _app_copy(directory: Path, version: str) -> Path:
    handlers = directory / "handlers"
    shutil.copytree(
        REPO_ROOT / "handlers", handlers, ignore=shutil.ignore_patterns("rust", "src", "*.c", "*.h")
    )
    manifest = handlers / "geo-hello" / "app.toml"
    manifest.write_text(re.sub(r'version = "[^"]+"', f'version = "{version}"', manifest.read_text(), count=1))
    return manifest


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="edgecdn-chaos-") as tmp:
        directory = Path(tmp)
        world_file = write_world_file(directory)
        async with LocalWorld(directory / "state", world_file=world_file, cwd=REPO_ROOT) as world:
            bench = Bench(world, load_world(world_file), rate=str(args.rate), out_dir=directory)
            await control_plane_kill(bench)
            await node_kill(bench)
            await region_kill(bench)
            await partition(bench, parse_duration(args.partition))
            if args.soak:
                await soak(bench, parse_duration(args.soak))
            if args.keep_reports:
                for report in sorted(directory.glob("*.html")):  # noqa: ASYNC240 - the world is done
                    shutil.copy(report, args.keep_reports)
    missed = [figure for figure in bench.figures if not figure.met]
    print(f"\n{len(bench.figures) - len(missed)} of {len(bench.figures)} budgets met")
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="bench.chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate", type=int, default=300, help="requests/s through the router (default: %(default)s)"
    )
    parser.add_argument("--partition", default="60s", help="how long Seoul is cut off (default: %(default)s)")
    parser.add_argument("--soak", default=None, help="also soak the world this long with faults, e.g. 10m")
    parser.add_argument("--keep-reports", type=Path, default=None, help="copy each load's report.html here")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
