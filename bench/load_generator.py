"""``edgecdn load`` side by side with locust and wrk against the same fast server (nginx).

Targets (issue 8): one ``edgecdn load`` worker process sustains >= 2.5x the requests/s
of locust's ``FastHttpUser`` (one locust process, same number of users, no wait time);
and at the same request rate its reported p50 is within 10% of wrk's.

The server is nginx (one worker process, ``return 200``), far faster than either
generator, so the generators are what is measured. On a machine with two or more CPUs
nginx is pinned to CPU 0 and each generator to CPU 1, so every tool gets one core.

wrk here is wrk 4 (Debian), which has no ``-R`` rate (that is wrk2). To compare at the
same rate, wrk's connections pause between requests with its Lua ``delay()`` hook (a
random 0 .. 2N ms, so the connections do not move in lockstep), and ``edgecdn load`` then
runs open loop with Poisson arrivals at the rate wrk actually achieved. The same
comparison is also made at equal closed-loop concurrency (where the rates differ).

    .venv/bin/python -m bench.load_generator [--seconds 10] [--users 64]

locust is a peer, not a dependency: ``.venv/bin/pip install locust``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import REPO_ROOT, WRK_INSTALL, PeerMissingError, free_port, parse_wrk, require_tool

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port};
    location / {{ add_header x-edge-region bench-region; return 200 "hello\\n"; }}
  }}
}}
"""

LOCUSTFILE = """
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

class Client(FastHttpUser):
    wait_time = constant(0)

    @task
    def hello(self):
        self.client.get("/hello")
"""

WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"
GEO_HELLO = REPO_ROOT / "handlers" / "geo-hello" / "app.toml"

# A fixed delay keeps wrk's connections in lockstep (they all start together and wrk's
# timers tick in whole milliseconds), so the server sees bursts of `connections` requests;
# a delay drawn uniformly from 0 .. 2x spreads them out.
WRK_DELAY = """
math.randomseed(os.time())
function delay()
  return math.random(0, {twice_ms})
end
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _pin(cpu: int) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def start_nginx(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    nginx = require_tool("nginx", "apt-get install -y nginx")
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=port))
    process = subprocess.Popen(
        [*_pin(0), nginx, "-c", str(conf), "-p", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            subprocess.run(
                ["curl", "-sf", f"http://127.0.0.1:{port}/"], check=True, capture_output=True, timeout=2
            )
            return process, f"http://127.0.0.1:{port}"
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"nginx did not start; see {directory / 'error.log'}")


def start_edge_node(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A real edge node serving geo-hello (the WAGI handler every world serves), on CPU 0."""
    ready = directory / "edge-ready.json"
    with (directory / "edge.log").open("wb") as log:
        process = subprocess.Popen(
            [*_pin(0), sys.executable, "-m", "edge_node", "--workers", "1", "--app", str(GEO_HELLO),
             "--region", "us-east-1",
             "--world", str(WORLD), "--data-dir", str(directory / "edge-data"), "--port", "0",
             "--ready-file", str(ready)],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the edge node did not start; see {directory / 'edge.log'}")
        time.sleep(0.05)
    url: str = json.loads(ready.read_text())["addresses"]["http"]
    return process, url


def run_edgecdn(url: str, directory: Path, *traffic: str) -> Figures:
    out = directory / "edgecdn-load.json"
    subprocess.run(
        [*_pin(1), sys.executable, "-m", "simulator", "load", "--target", url, "--path", "/hello",
         "--countries", "US", "--out", str(out), *traffic],
        check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    report = json.loads(out.read_text())
    totals = report["totals"]
    return Figures(
        requests_per_second=totals["achieved_rps"],
        p50_ms=totals["latency_ms"]["p50"],
        p99_ms=totals["latency_ms"]["p99"],
        errors=totals["errors"],
    )


def run_locust(url: str, directory: Path, *, users: int, seconds: int) -> Figures:
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or shutil.which("locust")
    if locust is None:
        raise PeerMissingError("locust is not installed; install it with: .venv/bin/pip install locust")
    locustfile = directory / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = directory / "locust"
    subprocess.run(
        [*_pin(1), locust, "-f", str(locustfile), "--headless", "-u", str(users), "-r", str(users),
         "-t", f"{seconds}s", "--host", url, "--only-summary", "--csv", str(prefix), "--loglevel", "ERROR"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    return Figures(
        requests_per_second=float(row["Requests/s"]),
        p50_ms=float(row["50%"]),
        p99_ms=float(row["99%"]),
        errors=int(row["Failure Count"]),
    )


def run_wrk(
    url: str, directory: Path, *, connections: int, seconds: int, delay_ms: int | None = None
) -> Figures:
    wrk = require_tool("wrk", WRK_INSTALL)
    script: list[str] = []
    if delay_ms is not None:
        path = directory / "delay.lua"
        path.write_text(WRK_DELAY.format(twice_ms=2 * delay_ms))
        script = ["-s", str(path)]
    result = subprocess.run(
        [*_pin(1), wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *script, f"{url}/hello"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    parsed = parse_wrk(result.stdout)
    return Figures(
        requests_per_second=parsed.requests_per_second,
        p50_ms=parsed.latency_p50_ms,
        p99_ms=parsed.latency_p99_ms,
        errors=parsed.errors + parsed.non_2xx,
    )


def median(runs: list[Figures]) -> Figures:
    """Field by field median of repeated runs."""
    return Figures(
        requests_per_second=statistics.median(r.requests_per_second for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        errors=max(r.errors for r in runs),
    )


def _row(name: str, f: Figures) -> str:
    return f"| {name} | {f.requests_per_second:,.0f} | {f.p50_ms:.3f} | {f.p99_ms:.3f} | {f.errors} |"


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.load_generator", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="length of each run (default: %(default)s)")
    parser.add_argument(
        "--users", type=int, default=64, help="closed-loop users/connections (default: %(default)s)"
    )
    parser.add_argument(
        "--paced", type=int, nargs="*", default=[64, 16], metavar="MS",
        help="wrk delay() per request, in ms, for the same-rate runs (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each comparison; medians (default: %(default)s)"
    )
    parser.add_argument(
        "--edge-paced", type=int, nargs="*", default=[128, 64], metavar="MS",
        help="the same, against a real edge node (default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        directory = Path(tmp)
        try:
            nginx, url = start_nginx(directory)
        except PeerMissingError as exc:
            print(f"bench.load_generator: {exc}", file=sys.stderr)
            return 2
        try:
            return _compare(url, directory, args)
        except PeerMissingError as exc:
            print(f"bench.load_generator: {exc}", file=sys.stderr)
            return 2
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)


def _compare(url: str, directory: Path, args: argparse.Namespace) -> int:
    seconds, users = args.seconds, args.users
    print(f"server: nginx, 1 worker, `return 200` at {url}; {seconds} s per run; CPUs: {os.cpu_count()}")
    print("\n### Throughput, closed loop, one process each\n")
    print("| generator | requests/s | p50 ms | p99 ms | errors |\n|---|---:|---:|---:|---:|")
    runs: dict[str, list[Figures]] = {"ours": [], "locust": [], "wrk": []}
    for _ in range(args.repeat):  # interleaved, so a noisy moment hits every tool alike
        runs["ours"].append(
            run_edgecdn(url, directory, "--concurrency", str(users), "--duration", f"{seconds}s")
        )
        runs["locust"].append(run_locust(url, directory, users=users, seconds=seconds))
        runs["wrk"].append(run_wrk(url, directory, connections=users, seconds=seconds))
    ours, locust, wrk = median(runs["ours"]), median(runs["locust"]), median(runs["wrk"])
    print(_row(f"edgecdn load --concurrency {users}", ours))
    print(_row(f"locust FastHttpUser -u {users}", locust))
    print(_row(f"wrk -t1 -c{users}", wrk))
    ratios = sorted(
        o.requests_per_second / c.requests_per_second
        for o, c in zip(runs["ours"], runs["locust"], strict=True)
    )
    ratio = ours.requests_per_second / locust.requests_per_second
    print(f"\nedgecdn load / locust (medians of {args.repeat} runs): **{ratio:.2f}x** (target >= 2.5x); "
          f"per run: {', '.join(f'{r:.2f}x' for r in ratios)}", flush=True)  # fmt: skip

    same_rate("nginx", url, directory, args, args.paced)

    print("\n### p50 at the same closed-loop concurrency (for reference: rates differ)\n")
    print("| connections | wrk req/s | wrk p50 ms | edgecdn req/s | edgecdn p50 ms |")
    print("|---:|---:|---:|---:|---:|")
    for connections in (1, 8):
        w = run_wrk(url, directory, connections=connections, seconds=seconds)
        e = run_edgecdn(url, directory, "--concurrency", str(connections), "--duration", f"{seconds}s")
        print(
            f"| {connections} | {w.requests_per_second:,.0f} | {w.p50_ms:.3f} | "
            f"{e.requests_per_second:,.0f} | {e.p50_ms:.3f} |",
            flush=True,
        )
    try:
        edge, edge_url = start_edge_node(directory)
    except RuntimeError as exc:
        log = (directory / "edge.log").read_text(errors="replace").strip().splitlines()[-1:]
        print(f"\nedge node comparison skipped: {exc}: {' '.join(log)}")
        return 0
    try:
        same_rate("edge node (geo-hello, WAGI)", edge_url, directory, args, args.edge_paced)
    finally:
        edge.terminate()
        edge.wait(timeout=10)
    return 0


def same_rate(server: str, url: str, directory: Path, args: argparse.Namespace, delays: list[int]) -> None:
    """wrk paced by delay(), then edgecdn load open loop at the rate wrk achieved."""
    seconds, users = args.seconds, args.users
    print(
        f"\n### p50 at the same rate, {server}: wrk paced by a random delay(), "
        "edgecdn open loop (Poisson) at wrk's rate\n"
    )
    print("| rate req/s | wrk p50 ms | edgecdn p50 ms | edgecdn / wrk | wrk p99 ms | edgecdn p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for delay_ms in delays:
        pairs: list[tuple[Figures, Figures]] = []
        for _ in range(args.repeat):
            wrk_run = run_wrk(url, directory, connections=users, seconds=seconds, delay_ms=delay_ms)
            rate_arg = f"{wrk_run.requests_per_second:.1f}"
            ours_run = run_edgecdn(
                url, directory, "--rate", rate_arg, "--arrival", "poisson", "--connections", str(users),
                "--duration", f"{seconds}s",
            )  # fmt: skip
            pairs.append((wrk_run, ours_run))
        paced, open_loop = median([w for w, _ in pairs]), median([o for _, o in pairs])
        rate = paced.requests_per_second
        relative = open_loop.p50_ms / paced.p50_ms
        worst = max(worst, abs(relative - 1))
        print(
            f"| {rate:,.0f} | {paced.p50_ms:.3f} | {open_loop.p50_ms:.3f} | {relative:.2f}x | "
            f"{paced.p99_ms:.3f} | {open_loop.p99_ms:.3f} |",
            flush=True,
        )
    print(f"\n{server}: largest p50 difference at the same rate: {worst:.0%} (target <= 10%)")


if __name__ == "__main__":
    sys.exit(main())
