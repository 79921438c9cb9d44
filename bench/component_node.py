"""The geo greeting as a WASI 0.2 component, side by side with WAGI and reactor, on one edge node.

Issue 25's figure: requests/s under ``wrk -t1 -c20`` of one edge node (one worker) serving,
in one app, the same greeting four ways: the Spin SDK (Python) component and the
componentize-js component (``wasi-http``), and geo-hello in C as WAGI and as a reactor.
wrk connects from 127.0.0.1, an unknown country, so each answers its default greeting.
Routes run one after another, each after a warm-up. The peer, where it can be had:
``jco serve`` (``@bytecodealliance/jco`` on npm) runs a ``wasi:http/proxy`` component on
Node.js; the JS component runs on it unchanged (the Python one imports Spin's interfaces,
which jco has no implementation of), with ``--isolate-requests instance``: a fresh instance
per request, as the edge node's. There is no ``wasmtime`` CLI on these registries
(Debian has no package, crates.io is not reachable), so ``wasmtime serve`` is not measured.

    .venv/bin/python -m bench.component_node [--seconds 10] [--connections 20]
    npm install --prefix bench/.peers @bytecodealliance/jco @bytecodealliance/preview2-shim   # the peer
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from bench.edge_throughput import WORLD, fetch, wait_until_serving
from bench.harness import REPO_ROOT, WrkResult, free_port, run_wrk
from simulator.supervisor import ChildSpec, Supervisor

COMPONENTS = REPO_ROOT / "handlers" / "components"
GEO_HELLO = REPO_ROOT / "handlers" / "geo-hello" / "geo_hello.wasm"
GEO_REACTOR = REPO_ROOT / "handlers" / "geo-hello-reactor" / "geo_hello_reactor.wasm"
JCO = REPO_ROOT / "bench" / ".peers" / "node_modules" / ".bin" / "jco"
JCO_ROW = "JS component on jco serve (Node.js)"
ROWS = {
    "Python component (Spin SDK)": "/py",
    "JS component (componentize-js)": "/js",
    "WAGI geo-hello (C)": "/wagi",
    "reactor geo-hello (C)": "/reactor",
}
BASE_ROW = "Python component (Spin SDK)"

APP = """
[app]
name = "greetings"
version = "1.0.0"

[[route]]
path = "/py"
component = "py"
[[route]]
path = "/js"
component = "js"
[[route]]
path = "/wagi"
module = "wagi"
[[route]]
path = "/reactor"
module = "reactor"

[component.py]
source = "geo_greeting.wasm"
memory = "32MiB"
timeout = "1s"
[component.js]
source = "geo_greeting_js.wasm"
memory = "32MiB"
timeout = "1s"
[module.wagi]
source = "geo_hello.wasm"
[module.reactor]
source = "geo_hello_reactor.wasm"
abi = "reactor"
"""


def write_app(directory: Path) -> Path:
    for source in (
        COMPONENTS / "geo-greeting" / "geo_greeting.wasm",
        COMPONENTS / "geo-greeting-js" / "geo_greeting_js.wasm",
        GEO_HELLO,
        GEO_REACTOR,
    ):
        shutil.copy(source, directory)
    (directory / "app.toml").write_text(APP)
    return directory / "app.toml"


async def start_jco(component: Path) -> tuple[asyncio.subprocess.Process, str] | None:
    """``jco serve`` on a free port, or None (not installed, or it cannot run the component)."""
    if not JCO.exists():
        return None
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        # A fresh component instance per request, as the edge node gives each request.
        str(JCO), "serve", "--port", str(port), "--isolate-requests", "instance", str(component),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # jco runs the server in a child node process: stop them together
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/js"
    try:
        await wait_until_serving(url, timeout_s=60)
    except TimeoutError:
        await stop_group(process)
        return None
    return process, url


async def stop_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    await process.wait()


async def measure(seconds: float, connections: int, cache_dir: Path) -> dict[str, WrkResult]:
    results: dict[str, WrkResult] = {}
    with tempfile.TemporaryDirectory(prefix="edgecdn-bench-") as tmp_name:
        tmp = Path(tmp_name)
        app = write_app(tmp)
        async with Supervisor(tmp / "run") as supervisor:
            argv = (
                sys.executable, "-m", "edge_node", "--workers", "1", "--app", str(app),
                "--region", "us-east-1", "--world", str(WORLD), "--data-dir", str(tmp / "node"),
                "--module-cache-dir", str(cache_dir), "--log-level", "warning",
            )  # fmt: skip
            node = await supervisor.start(ChildSpec(name="edge-node", argv=argv))
            base = node.report.addresses["http"]
            targets = {name: base + path for name, path in ROWS.items()}
            jco = await start_jco(COMPONENTS / "geo-greeting-js" / "geo_greeting_js.wasm")
            if jco is not None:
                targets[JCO_ROW] = jco[1]
            try:
                for name, url in targets.items():
                    body, _ = await fetch(url)
                    assert body.startswith(b"Hello"), (name, body)
                    await run_wrk(url, connections=connections, seconds=min(2.0, seconds))  # warm-up
                    results[name] = await run_wrk(url, connections=connections, seconds=seconds)
            finally:
                if jco is not None:
                    await stop_group(jco[0])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.component_node", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument(
        "--cache-dir", type=Path, default=REPO_ROOT / ".edgecdn" / "bench-components",
        help="compiled components, kept between runs (a Python component compiles in 5-20 s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    results = asyncio.run(measure(args.seconds, args.connections, args.cache_dir))
    load_after = os.getloadavg()
    base = results[BASE_ROW].requests_per_second
    print(f"{'server':<38}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'x Python':>10}")
    for name, result in results.items():
        print(
            f"{name:<38}{result.requests_per_second:>9.0f}{result.latency_p50_ms:>9.2f}"
            f"{result.latency_p99_ms:>9.2f}{result.errors + result.non_2xx:>8}"
            f"{result.requests_per_second / base:>10.2f}"
        )
    if JCO_ROW in results:
        ours = results["JS component (componentize-js)"].requests_per_second
        print(f"JS component, edge node / jco serve: {ours / results[JCO_ROW].requests_per_second:.2f}x")
    else:
        print("jco serve: not measured (install: see the module's docstring)")
    print(f"load average: {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
