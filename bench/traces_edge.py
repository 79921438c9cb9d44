"""What tracing costs an edge node: ``wrk -t1 -c50`` against two edge nodes serving
geo-hello in the same run, one with tracing off and one recording every request (100%
sampling: a server span and four stage spans per request) and exporting them over OTLP
to a real control-plane process. Rounds alternate off/on so drift hits both alike.
Target (issue 7): tracing on keeps >= 85% of the requests/s.

The collector shares this machine: it ingests ~15-30k spans/s here, taking CPU that wrk
and the node also want, so the figure is a pessimistic one for the node itself. The
control plane's statistics are read back after the runs to show every request arrived.

    .venv/bin/python -m bench.traces_edge [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench.harness import REPO_ROOT, PeerMissingError, WrkResult, run_wrk, start_control_plane
from bench.traces_ingest import cpu_seconds
from cpclient.operator import OperatorClient
from protos.edgecdn.v1 import traces_pb2
from simulator.supervisor import ChildSpec, RunningChild, Supervisor

WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"
APP = REPO_ROOT / "handlers" / "geo-hello" / "app.toml"
PATHS = {"WAGI": "/hello", "reactor": "/hello-fast"}


def node_spec(name: str, data_dir: Path, env: dict[str, str]) -> ChildSpec:
    return ChildSpec(
        name=name,
        argv=(
            sys.executable, "-m", "edge_node", "--app", str(APP), "--region", "us-east-1", "--node-id", name,
            "--world", str(WORLD), "--data-dir", str(data_dir), "--log-level", "warning",
        ),
        env=env,
    )  # fmt: skip


async def measure(seconds: float, rounds: int, connections: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="edgecdn-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with Supervisor(tmp / "run") as supervisor:
            control_plane = await start_control_plane(supervisor, tmp / "cp")
            tokens, address = control_plane.tokens, control_plane.address
            off = await supervisor.start(node_spec("traces-off", tmp / "off", {"OTEL_SDK_DISABLED": "true"}))
            on = await supervisor.start(
                node_spec(
                    "traces-on",
                    tmp / "on",
                    {
                        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{address}",
                        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{tokens['node']}",
                        "OTEL_TRACES_SAMPLER_ARG": "1.0",
                    },
                )
            )
            results: dict[str, dict[str, list[WrkResult]]] = {abi: {"off": [], "on": []} for abi in PATHS}
            cpu_us: dict[str, dict[str, list[float]]] = {abi: {"off": [], "on": []} for abi in PATHS}
            served = 0
            for abi, path in PATHS.items():
                for _ in range(rounds):
                    for label, node in (("off", off), ("on", on)):
                        url = _url(node) + path
                        await run_wrk(url, connections=connections, seconds=1.0)  # warm-up
                        before = cpu_seconds(node.report.pid)
                        result = await run_wrk(url, connections=connections, seconds=seconds)
                        used = cpu_seconds(node.report.pid) - before
                        results[abi][label].append(result)
                        requests = result.requests_per_second * max(1, round(seconds))
                        cpu_us[abi][label].append(used / requests * 1e6)
                        if label == "on":
                            served += round(result.requests_per_second * seconds)
            await asyncio.sleep(3)  # the node exports every second
            async with OperatorClient(address, tokens["viewer"]) as client:
                window = traces_pb2.GetStatsRequest()
                window.window.FromSeconds(900)
                window.region = "us-east-1"
                collected = sum(r.requests for r in (await client.get_stats(window)).rows)
    return {"results": results, "cpu_us": cpu_us, "served_on_approx": served, "collected_requests": collected}


def _url(node: RunningChild) -> str:
    return node.report.addresses["http"]


def report(measured: dict[str, object]) -> dict[str, object]:
    results = measured["results"]
    assert isinstance(results, dict)
    summary: dict[str, object] = {}
    print(f"{'path':<10}{'tracing':<9}{'req/s per round':>32}{'median':>10}")
    for abi, by_label in results.items():
        medians = {}
        for label, runs in by_label.items():
            rps = [r.requests_per_second for r in runs]
            medians[label] = statistics.median(rps)
            print(f"{abi:<10}{label:<9}{', '.join(f'{x:,.0f}' for x in rps):>32}{medians[label]:>10,.0f}")
        ratio = medians["on"] / medians["off"]
        print(f"{abi}: tracing on keeps {ratio:.1%} of requests/s (cost {1 - ratio:.1%}; target <= 15%)")
        cpu = measured["cpu_us"][abi]  # type: ignore[index]
        cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
        print(
            f"{abi}: node CPU per request {cpu_off:.0f} us off, {cpu_on:.0f} us on: a CPU-bound node "
            f"keeps {cpu_off / cpu_on:.1%} of its requests/s (cost {1 - cpu_off / cpu_on:.1%})"
        )
        summary[abi] = {
            "off_rps": medians["off"],
            "on_rps": medians["on"],
            "kept": ratio,
            "cpu_us_off": cpu_off,
            "cpu_us_on": cpu_on,
            "kept_by_cpu": cpu_off / cpu_on,
        }
    print(
        f"requests served with tracing on ~{measured['served_on_approx']:,}; "
        f"counted by the control plane's statistics: {measured['collected_requests']:,}"
    )
    summary["served_on_approx"] = measured["served_on_approx"]
    summary["collected_requests"] = measured["collected_requests"]
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.traces_edge", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        measured = asyncio.run(measure(args.seconds, args.rounds, args.connections))
    except PeerMissingError as exc:
        print(f"bench.traces_edge: {exc}", file=sys.stderr)
        return 2
    summary = report(measured)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
