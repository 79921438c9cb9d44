"""Cache hits: the edge node's HTTP cache side by side with nginx's ``proxy_cache``, in one run.

Budget (issue 20): with every answer a cache hit, the edge node serves >= 0.8x nginx's
requests/s, for one hot URL and for 100 URLs, with one worker each and with two workers
each. Both sit in front of the same origin (an aiohttp app in this process whose answers
are 2 KB with ``Cache-Control: max-age=3600``): the node through an origin route of a small
app, nginx through ``proxy_pass`` with ``proxy_cache`` (its own prefix and cache directory in
a temporary directory on tmpfs, /dev/shm: in memory, as the node's cache is). Each row
warms both servers with its load, then runs ``wrk -c50 --latency`` against one and the
other in turn, three times each (5 s a run), and shows each side's median run, and the
CPU time each spent per answer; the 100-URL rows rotate paths with a wrk Lua script. One-worker rows
pin each server to CPU 0 and wrk to CPU 1, so each gets one core; two-worker rows pin
nothing (wrk runs two threads).

Every answer of a measured run is a hit, or the row fails: a sample of each URL must say
``x-cache: HIT`` (nginx's ``$upstream_cache_status`` in the same header), and the origin
must not be asked anything while wrk runs.

    .venv/bin/python -m bench.nginx_cache [--seconds 5] [--rounds 3] [--connections 50]
                                          [--workers 1,2] [--json F]

The two-worker rows need ``edge-node --workers``; without it they are skipped, with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.harness import (
    REPO_ROOT,
    WRK_INSTALL,
    CpuClock,
    PeerMissingError,
    WrkResult,
    parse_wrk,
    require_tool,
)
from bench.nginx_peer import memory_dir, pin_cpu, start_nginx
from simulator.supervisor import ChildSpec, Supervisor

BUDGET = 0.8
BODY = bytes(range(32, 96)) * 32  # 2 KiB
URLS = 100
WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"
APP = """
[app]
name = "cache-bench"
version = "1.0.0"

[[route]]
path = "/c/..."
origin = "{origin}"
"""

# Each wrk thread walks the 100 paths in turn; requests are formatted once, not per request.
ROTATE_LUA = """
local requests = {{}}
local n = 0
init = function(args)
  for i = 0, {count} - 1 do
    requests[i + 1] = wrk.format("GET", "/c/" .. i)
  end
end
request = function()
  n = n % {count} + 1
  return requests[n]
end
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    workers: int
    load: str  # "1 hot URL" or "100 URLs"
    edge: WrkResult
    nginx: WrkResult
    edge_cpu_us: float  # CPU time (user + system) of all the server's processes per answer
    nginx_cpu_us: float
    steal_percent: float

    @property
    def ratio(self) -> float:
        return self.edge.requests_per_second / self.nginx.requests_per_second


class Origin:
    """The origin both caches front: 2 KB answers fresh for an hour; it counts what it is asked."""

    def __init__(self) -> None:
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(
            body=BODY, headers={"cache-control": "max-age=3600", "content-type": "text/plain"}
        )

    async def start(self) -> tuple[web.AppRunner, int]:
        application = web.Application()
        application.router.add_get("/{tail:.*}", self.handle)
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, int(runner.addresses[0][1])


def edge_node_has_workers() -> bool:
    """Whether ``edge-node`` takes ``--workers N`` (SO_REUSEPORT workers, issue 20)."""
    shown = subprocess.run(
        [sys.executable, "-m", "edge_node", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    return "--workers" in shown.stdout


def edge_node_spec(app: Path, data_dir: Path, workers: int, *, workers_flag: bool) -> ChildSpec:
    extra = ("--workers", str(workers)) if workers_flag else ()
    return ChildSpec(
        name=f"edge-node-{workers}",
        argv=(
            *pin_cpu(0 if workers == 1 else None),
            sys.executable, "-m", "edge_node", "--app", str(app), "--region", "us-east-1",
            "--world", str(WORLD), "--data-dir", str(data_dir), "--log-level", "warning", *extra,
        ),
    )  # fmt: skip


async def wrk(url: str, *, connections: int, threads: int, seconds: float, script: Path | None) -> WrkResult:
    binary = require_tool("wrk", WRK_INSTALL)
    args = [*pin_cpu(1 if threads == 1 else None), binary, f"-t{threads}", f"-c{connections}"]
    args += [f"-d{max(1, round(seconds))}s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    process = await asyncio.create_subprocess_exec(
        *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    return parse_wrk(output.decode())


async def verify_hits(base: str, paths: list[str], name: str) -> None:
    """Each path answered from the cache, on fresh connections (each may reach another worker)."""
    for path in paths:
        for _ in range(4):
            async with aiohttp.ClientSession() as client, client.get(base + path) as response:
                body = await response.read()
                status = response.headers.get("x-cache", "")
                if response.status != 200 or body != BODY or status != "HIT":
                    raise RuntimeError(
                        f"{name} {path}: expected a 2 KB cache hit, got {response.status}, "
                        f"{len(body)} bytes, x-cache {status!r}"
                    )


async def run_row(
    workers: int,
    load: str,
    urls: dict[str, str],
    pids: dict[str, int],
    origin: Origin,
    *,
    connections: int,
    seconds: float,
    rounds: int,
    script: Path | None,
) -> Row:
    """Both servers warmed and checked, then ``rounds`` runs of each, alternating (the host's
    slow spells hit both alike); each side's figures are those of its median run."""
    results: dict[str, list[WrkResult]] = {name: [] for name in urls}
    cpu_us: dict[str, list[float]] = {name: [] for name in urls}
    paths = ["/c/0"] if script is None else [f"/c/{i}" for i in range(URLS)]
    for name, base in urls.items():
        await wrk(base + "/c/0", connections=connections, threads=workers, seconds=2.0, script=script)
        await verify_hits(base, paths[:: max(1, len(paths) // 10)], name)
    before = CpuClock.now()
    asked = origin.requests
    for _ in range(rounds):
        for name, base in urls.items():
            cpu_before = tree_cpu_seconds(pids[name])
            result = await wrk(
                base + "/c/0", connections=connections, threads=workers, seconds=seconds, script=script
            )
            answers = result.requests_per_second * max(1, round(seconds))
            cpu_us[name].append((tree_cpu_seconds(pids[name]) - cpu_before) * 1e6 / max(1.0, answers))
            if result.errors or result.non_2xx:
                raise RuntimeError(f"{name}: {result.errors} socket errors, {result.non_2xx} non-2xx answers")
            results[name].append(result)
    if origin.requests != asked:
        raise RuntimeError(
            f"the origin was asked {origin.requests - asked} times: not every answer was a hit"
        )
    return Row(
        workers=workers,
        load=load,
        edge=_median(results["edge"]),
        nginx=_median(results["nginx"]),
        edge_cpu_us=_median_of(cpu_us["edge"]),
        nginx_cpu_us=_median_of(cpu_us["nginx"]),
        steal_percent=CpuClock.now().steal_percent_since(before),
    )


def tree_cpu_seconds(root: int) -> float:
    """User and system CPU time of ``root`` and every process below it so far (/proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    tree = {root}
    while True:  # one generation more each pass: nginx's workers, the node's workers
        grown = {pid for pid, parent in parents.items() if parent in tree} - tree
        if not grown:
            return sum(times.get(pid, 0.0) for pid in tree)
        tree |= grown


def _median_of(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _median(results: list[WrkResult]) -> WrkResult:
    return sorted(results, key=lambda result: result.requests_per_second)[len(results) // 2]


async def measure(seconds: float, connections: int, rounds: int, worker_counts: list[int]) -> list[Row]:
    workers_flag = edge_node_has_workers()
    if not workers_flag and any(n != 1 for n in worker_counts):
        print(
            "bench.nginx_cache: edge-node has no --workers flag yet: the rows with more than one "
            "worker are skipped",
            flush=True,
        )
        worker_counts = [n for n in worker_counts if n == 1]
    origin = Origin()
    runner, origin_port = await origin.start()
    rows: list[Row] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="edgecdn-bench-cache-") as tmp_name,
            tempfile.TemporaryDirectory(prefix="edgecdn-bench-nginx-", dir=memory_dir()) as shm,
        ):
            tmp = Path(tmp_name)
            script = tmp / "rotate.lua"
            script.write_text(ROTATE_LUA.format(count=URLS))
            app = tmp / "app.toml"
            app.write_text(APP.format(origin=f"http://127.0.0.1:{origin_port}"))
            for workers in worker_counts:
                # A supervisor per worker count: the node stops before the next one starts.
                async with Supervisor(tmp / f"run-{workers}") as supervisor:
                    node = await supervisor.start(
                        edge_node_spec(app, tmp / f"node-{workers}", workers, workers_flag=workers_flag)
                    )
                    nginx, nginx_url = await start_nginx(Path(shm) / f"nginx-{workers}", origin_port, workers)
                    urls = {"edge": node.report.addresses["http"], "nginx": nginx_url}
                    try:
                        for load, rotate in (("1 hot URL", None), (f"{URLS} URLs", script)):
                            row = await run_row(
                                workers,
                                load,
                                urls,
                                {"edge": node.pid, "nginx": nginx.pid},
                                origin,
                                connections=connections,
                                seconds=seconds,
                                rounds=rounds,
                                script=rotate,
                            )
                            rows.append(row)
                    finally:
                        nginx.terminate()
                        await nginx.wait()
    finally:
        await runner.cleanup()
    return rows


def report(rows: list[Row]) -> bool:
    print(
        f"{'workers':<8}{'load':<11}{'edge req/s':>11}{'nginx req/s':>12}{'ratio':>7}{'met':>5}"
        f"{'edge p50':>10}{'nginx p50':>10}{'edge p99':>10}{'nginx p99':>10}"
        f"{'edge CPU':>10}{'nginx CPU':>10}{'steal %':>8}"
    )
    met_all = True
    for row in rows:
        met = row.ratio >= BUDGET
        met_all = met_all and met
        print(
            f"{row.workers:<8}{row.load:<11}{row.edge.requests_per_second:>11.0f}"
            f"{row.nginx.requests_per_second:>12.0f}{row.ratio:>6.2f}x{'yes' if met else 'NO':>5}"
            f"{row.edge.latency_p50_ms:>8.2f}ms{row.nginx.latency_p50_ms:>8.2f}ms"
            f"{row.edge.latency_p99_ms:>8.2f}ms{row.nginx.latency_p99_ms:>8.2f}ms"
            f"{row.edge_cpu_us:>8.1f}us{row.nginx_cpu_us:>8.1f}us{row.steal_percent:>8.1f}"
        )
    print(
        f"budget: edge / nginx >= {BUDGET:.2f}x requests/s in every row; CPU: user + system time of "
        "the server's processes per answer"
    )
    return met_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.nginx_cache", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="one wrk run (default: %(default)s)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each server per row (default: %(default)s)"
    )
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--workers", default="1,2", help="worker counts, one pair of rows each (default: %(default)s)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        worker_counts = [int(n) for n in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers takes counts separated by commas, such as 1,2; got {args.workers!r}")
    if any(n < 1 for n in worker_counts):
        parser.error(f"--workers counts must be at least 1; got {args.workers!r}")
    load_before = os.getloadavg()
    try:
        rows = asyncio.run(measure(args.seconds, args.connections, args.rounds, worker_counts))
    except PeerMissingError as exc:
        print(f"bench.nginx_cache: {exc}", file=sys.stderr)
        return 2
    met = report(rows)
    load_after = os.getloadavg()
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after "
        + ", ".join(f"{x:.2f}" for x in load_after)
    )
    if args.json:
        figures = [{**asdict(row), "ratio": row.ratio} for row in rows]
        args.json.write_text(json.dumps({"rows": figures, "budget": BUDGET}, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
