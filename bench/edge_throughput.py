"""Edge-node throughput under ``wrk -t1 -c50``, side by side with its peers, in one run.

Targets (issue 4): geo-hello over WAGI reaches >= 0.6x the requests/s of a plain aiohttp
handler returning the same bytes; over the reactor ABI >= 1.0x Cloudflare's workerd
serving a JS worker that calls the same reactor wasm module (bench/workerd/worker.js).
Every server is a separate process on loopback; they run one after another, each after a
short warm-up, so each gets the same idle machine. Peers run at their best: the plain
aiohttp server on uvloop, the loop the edge node runs on (``--peer-loop asyncio`` for
asyncio's default loop); the table says which loop each server ran.

    .venv/bin/python -m bench.edge_throughput [--seconds 10] [--connections 50] [--peer-loop uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import aiohttp

from bench.harness import REPO_ROOT, CpuClock, PeerMissingError, WrkResult, free_port, run_wrk
from bench.plain_server import LOOPS
from simulator.supervisor import ChildSpec, Supervisor
from wasm_host.wasi_cgi import CHOICE_ENV

WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"
# The geo-hello app serves the same greeting over WAGI at /hello and over the reactor ABI at /hello-fast.
APP = REPO_ROOT / "handlers" / "geo-hello" / "app.toml"
REACTOR_WASM = REPO_ROOT / "handlers" / "geo-hello-reactor" / "geo_hello_reactor.wasm"
WORKERD_DIR = REPO_ROOT / "bench" / "workerd"
WORKERD_LOCAL = REPO_ROOT / "bench" / ".peers" / "node_modules" / ".bin" / "workerd"
# The same node with WAGI on wasmtime's WASI: what wasm_host/wasi_cgi.c is measured against.
WASMTIME_WASI_ROW = "  (WAGI on wasmtime's WASI)"
WORKERD_INSTALL = "npm install --prefix bench/.peers workerd"
# The edge node picks its loop itself (edge_node/__main__.py: serve_until_signalled(fast_loop=True))
# and does not report it; the plain aiohttp peer reports the loop that ran (bench/plain_server.py).
NODE_LOOP = "uvloop (edge_node runs fast_loop=True)"
WORKERD_LOOP = "workerd's own (KJ)"


def edge_node_spec(name: str, app: Path, data_dir: Path, *, wasi: str = "native") -> ChildSpec:
    """A node in us-east-1; wrk connects from 127.0.0.1, an unknown country, so the default greeting.

    ``wasi="wasmtime"`` runs WAGI commands on wasmtime's WASI instead of wasm_host/wasi_cgi.c.
    """
    return ChildSpec(
        name=name,
        argv=(
            sys.executable, "-m", "edge_node", "--workers", "1", "--app", str(app), "--region", "us-east-1",
            "--world", str(WORLD), "--data-dir", str(data_dir), "--log-level", "warning",
        ),
        env={CHOICE_ENV: wasi},
    )  # fmt: skip


def workerd_binary() -> str:
    found = shutil.which("workerd") or (str(WORKERD_LOCAL) if WORKERD_LOCAL.exists() else None)
    if found is None:
        raise PeerMissingError(f"workerd is not installed; install it with: {WORKERD_INSTALL}")
    return found


async def wait_until_serving(url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as client:
        while True:
            try:
                async with client.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer 200 within {timeout_s}s")
            await asyncio.sleep(0.1)


async def start_workerd(workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    shutil.copy(WORKERD_DIR / "worker.js", workdir / "worker.js")
    shutil.copy(REACTOR_WASM, workdir / "handler.wasm")
    template = (WORKERD_DIR / "config.capnp.in").read_text()
    (workdir / "config.capnp").write_text(template.replace("@PORT@", str(port)))
    process = await asyncio.create_subprocess_exec(
        workerd_binary(), "serve", str(workdir / "config.capnp"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/hello"
    await wait_until_serving(url)
    return process, url


async def fetch(url: str) -> tuple[bytes, str]:
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        return await response.read(), response.headers.get("content-type", "text/plain")


async def measure(
    seconds: float, connections: int, peer_loop: str = "uvloop"
) -> tuple[dict[str, WrkResult], dict[str, float], dict[str, str]]:
    """Each server's wrk result, the percent of CPU time the host stole during its run, and its event loop."""
    results: dict[str, WrkResult] = {}
    steal: dict[str, float] = {}
    loops: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="edgecdn-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with Supervisor(tmp / "run") as supervisor:
            node = await supervisor.start(edge_node_spec("edge-node", APP, tmp / "node"))
            on_wasmtime = await supervisor.start(
                edge_node_spec("edge-node-wasmtime-wasi", APP, tmp / "node-wasmtime", wasi="wasmtime")
            )
            wagi_url = node.report.addresses["http"] + "/hello"
            body, content_type = await fetch(wagi_url)
            (tmp / "body").write_bytes(body)
            plain_argv = (
                sys.executable, "-m", "bench.plain_server", "--body-file", str(tmp / "body"),
                "--content-type", content_type, "--loop", peer_loop,
            )  # fmt: skip
            plain = await supervisor.start(ChildSpec(name="plain-aiohttp", argv=plain_argv))
            workerd, workerd_url = await start_workerd(tmp)
            try:
                targets = {
                    "plain aiohttp": plain.report.addresses["http"] + "/hello",
                    "edge-node WAGI": wagi_url,
                    WASMTIME_WASI_ROW: on_wasmtime.report.addresses["http"] + "/hello",
                    "edge-node reactor": node.report.addresses["http"] + "/hello-fast",
                    "workerd (JS + same wasm)": workerd_url,
                }
                loops = dict.fromkeys(targets, NODE_LOOP)
                loops["plain aiohttp"] = str(plain.report.extra.get("loop", "not reported"))
                loops["workerd (JS + same wasm)"] = WORKERD_LOOP
                for name, url in targets.items():
                    await run_wrk(url, connections=connections, seconds=min(2.0, seconds))  # warm-up
                    before = CpuClock.now()
                    results[name] = await run_wrk(url, connections=connections, seconds=seconds)
                    steal[name] = CpuClock.now().steal_percent_since(before)
            finally:
                workerd.terminate()
                await workerd.wait()
    return results, steal, loops


def report(
    results: dict[str, WrkResult], steal: dict[str, float], loops: dict[str, str]
) -> dict[str, object]:
    wagi_ratio = results["edge-node WAGI"].requests_per_second / results["plain aiohttp"].requests_per_second
    reactor_ratio = (
        results["edge-node reactor"].requests_per_second
        / results["workerd (JS + same wasm)"].requests_per_second
    )
    print(f"{'server':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'steal %':>9}  loop")
    for name, result in results.items():
        failures = result.errors + result.non_2xx
        print(
            f"{name:<28}{result.requests_per_second:>10.0f}{result.latency_p50_ms:>10.2f}"
            f"{result.latency_p99_ms:>10.2f}{failures:>8}{steal[name]:>9.1f}  {loops[name]}"
        )
    print(f"WAGI / plain aiohttp:  {wagi_ratio:.2f}x (target >= 0.60x)")
    native_gain = (
        results["edge-node WAGI"].requests_per_second / results[WASMTIME_WASI_ROW].requests_per_second
    )
    print(f"WAGI native WASI / wasmtime's WASI: {native_gain:.2f}x")
    print(f"reactor / workerd:     {reactor_ratio:.2f}x (target >= 1.00x)")
    return {
        "results": {name: asdict(result) for name, result in results.items()},
        "wagi_vs_plain_aiohttp": wagi_ratio,
        "reactor_vs_workerd": reactor_ratio,
        "wagi_native_vs_wasmtime_wasi": native_gain,
        "host_steal_percent": steal,
        "event_loops": loops,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.edge_throughput", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--peer-loop", choices=LOOPS, default="uvloop",
        help="the plain aiohttp peer's event loop (default: %(default)s, the edge node's)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    try:
        results, steal, loops = asyncio.run(measure(args.seconds, args.connections, args.peer_loop))
    except PeerMissingError as exc:
        print(f"bench.edge_throughput: {exc}", file=sys.stderr)
        return 2
    load_after = os.getloadavg()
    summary = report(results, steal, loops)
    # The machine is shared: a load average well over what this run puts on it (~1-2) means others were busy.
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after "
        + ", ".join(f"{x:.2f}" for x in load_after)
    )
    summary["load_average"] = {"before": load_before, "after": load_after}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
