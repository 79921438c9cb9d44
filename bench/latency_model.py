"""The latency model on the router's hot path: backbone routes, cached and not, beside the great circle.

    .venv/bin/python -m bench.latency_model [--quick]

The router's WAN emulation asks for one one-way delay per direction of every request
(``router.wan.WanSettings.one_way_ms``: a client's coordinates and a region id). Measured
side by side in one run, on the default world, with the coordinates of its 42 countries
against its 8 regions (what the geo database hands the router):

* ``great-circle``: the old model (the peer): a haversine per call;
* ``backbone, cached``: the default model as the router runs it: the route is looked up
  in the model's cache;
* ``backbone, path search``: what every request would pay without the cache: nearest
  hubs and the route through the precomputed shortest paths, each call;
* building the model: the shortest paths between all hubs (once per process).

Ratios are "per-call time / the great-circle model's". Budget: the cached backbone within
1.5x of the great-circle model's time per call (the cache must make the richer model
free on the hot path); exit status 1 when missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from geo.backbone import DEFAULT_BACKBONE, load_backbone
from geo.backbone_paths import BackbonePaths
from geo.latency import Coordinate, LatencyModel
from geo.world import load_world

DEFAULT_WORLD = Path(__file__).resolve().parent.parent / "deploy" / "local" / "world.toml"
CACHED_BUDGET_RATIO = 1.5


def _per_call_us(run: Callable[[], None], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the time per call, in µs (``run`` makes ``calls`` calls)."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.latency_model", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    rounds, repeats = (20, 3) if args.quick else (200, 7)

    world = load_world(DEFAULT_WORLD)
    great_circle = LatencyModel(world, dataclasses.replace(world.latency, model="great-circle"))
    backbone = LatencyModel(world)
    origins = [Coordinate(latitude=c.latitude, longitude=c.longitude) for c in world.countries]
    regions = [r.id for r in world.regions]
    region_points = [(r.latitude, r.longitude) for r in world.regions]
    calls = rounds * len(origins) * len(regions)
    rng = random.Random(world.seed)

    def via(model: LatencyModel) -> Callable[[], None]:
        def run() -> None:
            delay = model.one_way_delay_ms
            for _ in range(rounds):
                for origin in origins:
                    for region in regions:
                        delay(origin, region, rng)

        return run

    paths = backbone.paths
    assert paths is not None

    def search() -> None:
        route = paths.route
        for _ in range(rounds):
            for origin in origins:
                point = (origin.latitude, origin.longitude)
                for target in region_points:
                    route(point, target)

    via(backbone)()  # warm the cache, as a running router's is after the first requests
    gc_us = _per_call_us(via(great_circle), calls, repeats)
    cached_us = _per_call_us(via(backbone), calls, repeats)
    search_us = _per_call_us(search, calls, max(1, repeats // 2))
    backbone_file = load_backbone(DEFAULT_BACKBONE)

    def build() -> None:
        BackbonePaths(backbone_file)

    build_ms = _per_call_us(build, 1, 5) / 1000

    print(f"{calls:,} one-way delays per run ({len(origins)} countries x {len(regions)} regions x {rounds})")
    print(f"{'model':<28}{'µs per call':>12}{'vs great-circle':>18}")
    for name, value in (
        ("great-circle (peer)", gc_us),
        ("backbone, cached", cached_us),
        ("backbone, path search", search_us),
    ):
        print(f"{name:<28}{value:>12.2f}{value / gc_us:>17.2f}x")
    print(
        f"building the shortest paths ({len(backbone_file.hubs)} hubs, {len(backbone_file.links)} links): "
        f"{build_ms:.1f} ms, once per process"
    )
    ok = cached_us <= gc_us * CACHED_BUDGET_RATIO
    verdict = "ok" if ok else "MISSED"
    print(
        f"budget: cached backbone <= {CACHED_BUDGET_RATIO}x the great-circle model's time per call: {verdict}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
