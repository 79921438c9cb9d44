"""A handler making one cached outbound request, against the same handler without it.

Target (issue 23): ``handlers/geo-weather`` fetching its country's weather through ``self``
(answered by the node's HTTP cache: a HIT after the first request) serves >= 0.5x the
requests/s of the same module answering without the fetch (``WEATHER_FETCH=off``). Both
import ``edge_http``, so both run on the executor's outbound pool: the difference is the
fetch alone (the worker -> event loop -> worker hop, the cache lookup, the host calls).
For context, geo-hello over WAGI (no ``edge_http``, so run inline on the loop) is measured
too. One edge node process and the world's origin on loopback; ``wrk`` against each route
in turn after a warm-up, in interleaved rounds (the machine is shared: load that comes and
goes then falls on every route alike), and each route's median round is reported.

    .venv/bin/python -m bench.outbound_fetch [--seconds 3] [--rounds 5] [--connections 50] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import aiohttp

from bench.harness import REPO_ROOT, CpuClock, PeerMissingError, WrkResult, run_wrk
from simulator.supervisor import ChildSpec, Supervisor

WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"
GEO_WEATHER = REPO_ROOT / "handlers" / "geo-weather" / "geo_weather.wasm"
GEO_HELLO = REPO_ROOT / "handlers" / "geo-hello" / "geo_hello.wasm"
TARGET_RATIO = 0.5
FETCHING = "geo-weather, 1 cached fetch"
BASELINE = "geo-weather, no fetch"
INLINE = "geo-hello WAGI (inline)"

APP = """
[app]
name = "outbound-bench"
version = "1.0.0"

[[route]]
path = "/weather"
module = "fetching"

[[route]]
path = "/weather-no-fetch"
module = "baseline"

[[route]]
path = "/hello"
module = "hello"

[[route]]
path = "/shop/..."
origin = "{origin}"

[module.fetching]
source = "geo_weather.wasm"
timeout = "2s"
allowed_outbound_hosts = ["http://self"]

[module.baseline]
source = "geo_weather.wasm"
timeout = "2s"
allowed_outbound_hosts = ["http://self"]
env = {{ WEATHER_FETCH = "off" }}

[module.hello]
source = "geo_hello.wasm"
"""


async def _check(url: str, expected: bytes) -> None:
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        body = await response.read()
    if response.status != 200 or expected not in body:
        raise RuntimeError(f"{url} answered {response.status}: {body[:200]!r}")


async def measure(
    seconds: float, connections: int, rounds: int
) -> tuple[dict[str, WrkResult], dict[str, float]]:
    """Each route's median round (by requests/s) and the host's steal during its rounds."""
    runs: dict[str, list[WrkResult]] = {}
    steal: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edgecdn-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "geo_weather.wasm").write_bytes(GEO_WEATHER.read_bytes())
        (tmp / "geo_hello.wasm").write_bytes(GEO_HELLO.read_bytes())
        async with Supervisor(tmp / "run") as supervisor:
            origin = await supervisor.start(
                ChildSpec(name="origin", argv=(sys.executable, "-m", "simulator.world_origin", "--port", "0"))
            )
            (tmp / "app.toml").write_text(APP.format(origin=origin.report.addresses["http"]))
            node = await supervisor.start(
                ChildSpec(
                    name="edge-node",
                    argv=(
                        sys.executable,
                        "-m",
                        "edge_node",
                        "--app",
                        str(tmp / "app.toml"),
                        "--region",
                        "us-east-1",
                        "--world",
                        str(WORLD),
                        "--data-dir",
                        str(tmp / "node"),
                        "--log-level",
                        "warning",
                    ),
                )
            )
            base = node.report.addresses["http"]
            targets = {
                FETCHING: base + "/weather",
                BASELINE: base + "/weather-no-fetch",
                INLINE: base + "/hello",
            }
            # The node's workers (SO_REUSEPORT) each have their own memory cache: one MISS each.
            for _ in range(8):
                await _check(targets[FETCHING], b'"upstream_cache": "')
            await _check(targets[FETCHING], b'"upstream_cache": "HIT"')
            await _check(targets[BASELINE], b'"upstream_cache": "NONE"')
            for url in targets.values():
                await run_wrk(url, connections=connections, seconds=min(2.0, seconds))  # warm-up
            for _ in range(rounds):
                for name, url in targets.items():
                    before = CpuClock.now()
                    runs.setdefault(name, []).append(
                        await run_wrk(url, connections=connections, seconds=seconds)
                    )
                    steal[name] = max(steal.get(name, 0.0), CpuClock.now().steal_percent_since(before))
    results = {
        name: sorted(found, key=lambda r: r.requests_per_second)[len(found) // 2]
        for name, found in runs.items()
    }
    return results, steal


def report(results: dict[str, WrkResult], steal: dict[str, float]) -> dict[str, object]:
    ratio = results[FETCHING].requests_per_second / results[BASELINE].requests_per_second
    inline_ratio = results[FETCHING].requests_per_second / results[INLINE].requests_per_second
    print("median round of each route:")
    print(f"{'handler':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'steal %':>9}")
    for name, result in results.items():
        failures = result.errors + result.non_2xx
        print(
            f"{name:<30}{result.requests_per_second:>10.0f}{result.latency_p50_ms:>10.2f}"
            f"{result.latency_p99_ms:>10.2f}{failures:>8}{steal[name]:>9.1f}"
        )
    print(f"one cached fetch / no fetch:  {ratio:.2f}x (target >= {TARGET_RATIO:.2f}x)")
    print(f"one cached fetch / geo-hello inline:  {inline_ratio:.2f}x (context: pool placement included)")
    return {
        "results": {name: asdict(result) for name, result in results.items()},
        "fetch_vs_no_fetch": ratio,
        "fetch_vs_inline_geo_hello": inline_ratio,
        "host_steal_percent": steal,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.outbound_fetch", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="wrk run per handler and round (default 3)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one round of 2 s per handler")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        results, steal = asyncio.run(
            measure(2.0 if args.quick else args.seconds, args.connections, 1 if args.quick else args.rounds)
        )
    except PeerMissingError as exc:
        print(f"bench.outbound_fetch: {exc}", file=sys.stderr)
        return 2
    figures = report(results, steal)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    ratio = figures["fetch_vs_no_fetch"]
    assert isinstance(ratio, float)
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
