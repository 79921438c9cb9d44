"""Rollouts: how fast a broken version is rolled back, and a rollback of 1,000 nodes.

    .venv/bin/python -m bench.rollouts [--rate 300] [--nodes 1000] [--skip-world]

* **Broken version in wave 1, under load.** A real world (`edgecdn up`) under `edgecdn load`
  at ``--rate`` through the router; `edgectl rollout start` ships geo-hello 1.2.0 (every
  /hello a 500, handlers/geo-hello-broken) in three waves with a 30 s bake. Measured, from
  the rollout's own history: from wave 1's ACK (its first failing answer cannot come
  earlier) until every touched region runs the previous version again (rolled_back).
  Budget: 5 s. Also: no client outside wave 1's region got 1.2.0 (`x-edge-app`).
* **Rollback of 1,000 nodes in 10 waves.** A real control plane process and 1,000 node
  sessions in this process (the real session client, as bench.control_plane_deploy), 100
  per region; a rollout goes through nine waves and bakes the tenth, then an operator
  aborts it: timed from the abort (the verdict) until every one of the 1,000 nodes ACKed
  its previous version (aborted). Budget: 3 s.

No peer runs here (Argo Rollouts needs Kubernetes); ratio is measured / budget. Exit 1 when
a budget is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.control_plane_deploy import Fleet, module_of, release
from bench.harness import REPO_ROOT, start_control_plane
from cpclient.operator import OperatorClient as Client
from protos.edgecdn.v1 import common_pb2, rollouts_pb2
from simulator.local_world import LocalWorld
from simulator.supervisor import Supervisor

BROKEN_BUDGET_S = 5.0
ROLLBACK_BUDGET_S = 3.0
REGIONS = 10


def _at(history: list[dict[str, Any]], predicate: Any) -> float:
    entry = next(t for t in history if predicate(t))
    return datetime.fromisoformat(entry["at"]).timestamp()


async def broken_version(rate: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-rollouts-") as tmp:
        async with LocalWorld(Path(tmp) / "state", cwd=REPO_ROOT) as world:
            register = await world.run("edgectl", "apps", "register", "handlers/geo-hello-broken/app.toml")
            if register.code != 0:
                raise RuntimeError(register.err)
            out = Path(tmp) / "load.json"
            load = await world.spawn(
                "edgecdn", "load", "--mix", "KR=40,JP=30,DE=30", "--rate", str(rate), "--duration", "25s",
                "--out", str(out),
            )  # fmt: skip
            await asyncio.sleep(5)
            started = await world.run(
                "edgectl", "rollout", "start", "geo-hello@1.2.0",
                "--waves", "ap-northeast-2;ap-northeast-1,ap-south-1;*",
                "--bake", "30s", "--max-error-rate", "1%", "--min-requests", "50", "--watch", "-o", "json",
            )  # fmt: skip
            final = json.loads(started.out.splitlines()[-1])["rollout"]
            await load.communicate()
            report = json.loads(out.read_text())
    history = final["history"]
    acked = _at(history, lambda t: t["wave"] == 0 and t["to"] == "baking")
    back = _at(history, lambda t: t["to"] == "rolled_back")
    leaked = sorted(
        region for region, figures in report["regions"].items()
        if region != "ap-northeast-2" and "geo-hello@1.2.0" in figures.get("versions", {})
    )  # fmt: skip
    return {
        "state": final["state"],
        "reason": final["waves"][0]["gate"]["reason"] if final["waves"][0]["gate"] else final["message"],
        "seconds": back - acked,
        "leaked_regions": leaked,
        "errors": report["totals"]["errors"],
        "requests": report["totals"]["requests"],
    }


async def thousand_nodes(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-rollouts-") as tmp:
        data_dir = Path(tmp) / "cp"
        async with Supervisor(Path(tmp) / "run") as supervisor:
            control_plane = await start_control_plane(supervisor, data_dir)
            address, tokens = control_plane.address, control_plane.tokens
            fleet = Fleet(address, tokens["node"], count, compile_modules=False, regions=REGIONS)
            await fleet.start()
            async with Client(address, tokens["operator"]) as client:
                for version, marker in (("1.0", 1), ("2.0", 2)):
                    await release(client, "bench-rollout", version, module_of(2_000, marker))
                deployment = await client.deploy("bench-rollout", "1.0", common_pb2.Selector(all=True))
                async for _ in client.watch_deployment(deployment.id, 60):
                    pass
                spec = rollouts_pb2.RolloutSpec(app_name="bench-rollout", app_version="2.0")
                spec.gate.max_error_rate = 0.01
                spec.gate.min_requests = 50
                for index in range(REGIONS):
                    wave = spec.waves.add(regions=[f"region-{index}"])
                    wave.bake_time.FromSeconds(600 if index == REGIONS - 1 else 0)
                rollout = await client.start_rollout(spec)
                async for event in client.watch_rollout(rollout.id):
                    last = event.rollout
                    if last.current_wave == REGIONS - 1 and last.state == rollouts_pb2.ROLLOUT_STATE_BAKING:
                        break
                verdict = time.perf_counter()
                await client.rollout_action("abort", rollout.id, reason="bench: roll 1,000 nodes back")
                async for event in client.watch_rollout(rollout.id):
                    last = event.rollout
                elapsed = time.perf_counter() - verdict
                nodes = await client.list_nodes()
            await fleet.stop()
            await supervisor.stop_all(timeout_s=10)
    on_previous = sum(1 for node in nodes if node.app_version == "1.0")
    return {"state": last.state_name, "seconds": elapsed, "nodes": len(nodes), "on_previous": on_previous}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate", type=int, default=300, help="requests/s through the router (default: %(default)s)"
    )
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes (default: %(default)s)")
    parser.add_argument("--skip-world", action="store_true", help="only the 1,000-node rollback")
    args = parser.parse_args()
    rows = []
    if not args.skip_world:
        broken = asyncio.run(broken_version(args.rate))
        print(f"broken version: {json.dumps(broken)}", flush=True)
        rows.append(
            ("broken 1.2.0 in wave 1: ACK to rolled back everywhere", broken["seconds"], BROKEN_BUDGET_S)
        )
        rows.append(("  regions outside wave 1 that served 1.2.0", float(len(broken["leaked_regions"])), 0.0))
    thousand = asyncio.run(thousand_nodes(args.nodes))
    print(f"{args.nodes} nodes: {json.dumps(thousand)}", flush=True)
    rows.append(
        (
            f"rollback of {args.nodes} nodes in {REGIONS} waves: abort to all ACKed",
            thousand["seconds"],
            ROLLBACK_BUDGET_S,
        )
    )
    rows.append(
        (
            "  nodes not on the previous version after it",
            float(thousand["nodes"] - thousand["on_previous"]),
            0.0,
        )
    )
    print(f"\n{'measure':<62} {'value':>8} {'budget':>7} {'ratio':>6}")
    for label, value, budget in rows:
        ratio = f"{value / budget:.2f}" if budget else "-"
        print(f"{label:<62} {value:>8.3f} {budget:>7g} {ratio:>6}")
    return 0 if all(value <= budget for _, value, budget in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
