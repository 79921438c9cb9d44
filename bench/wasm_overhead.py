"""Per-request wasm overhead (instantiate + run) for both ABIs, against a plain Python handler.

``.venv/bin/python -m bench.wasm_overhead`` (``--quick`` for a smoke run). Every case runs
the same request through the same code the edge node calls (``Handler.handle``), side by
side in one process, and reports p50/p99 and the ratio to a plain Python function that
builds the same geo-hello answer. It also measures what the design decisions rest on:
pooling vs on-demand instance allocation, WAGI on wasm_host/wasi_cgi.c's WASI vs
wasmtime's, a fresh vs a reused reactor instance, inline vs thread-pool execution under
asyncio, AOT cache loads, and RSS with 20 modules loaded. The geo greeting as a wasi-http
component (Spin SDK Python; componentize-js) runs beside them, fewer times (it costs
milliseconds), compiled once into ``.edgecdn/bench-components``; ``bench.component_http``
breaks its cost down.
Exit status 1 when a budget of issue 4 is missed (WAGI p50 <= 60 us, reactor p50 <= 30 us,
20 modules under 150 MB RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import wasmtime

from bench.geo_request import REQUEST, python_geo_hello
from bench.harness import CpuClock
from bench.sampling import Timing, percentiles, timed, timed_rounds
from manifest import AppManifest, load_manifest, read_module
from wasm_host import (
    EngineConfig,
    ExecutorConfig,
    Handler,
    Limits,
    ModuleCache,
    WasmEngine,
    WasmExecutor,
    WasmRequest,
    WasmResponse,
    _raw,
    create_handler,
)
from wasm_host.codec import decode_response, encode_request
from wasm_host.component_cache import ComponentCache
from wasm_host.component_handler import HttpComponentHandler
from wasm_host.executor import ExecutionMode
from wasm_host.reactor import ReactorHandler

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "handlers" / "geo-hello" / "app.toml"
COMPONENTS = {
    "geo-greeting (wasi-http, Spin SDK Python component)": "geo-greeting/geo_greeting.wasm",
    "geo-greeting-js (wasi-http, componentize-js component)": "geo-greeting-js/geo_greeting_js.wasm",
}
WAGI_P50_BUDGET_US = 60.0
REACTOR_P50_BUDGET_US = 30.0
RSS_BUDGET_MB = 150.0


def _handlers(engine: WasmEngine, app: AppManifest, cache: ModuleCache) -> dict[str, Handler]:
    built = {}
    for name, spec in app.modules.items():
        limits = Limits(
            memory_bytes=spec.memory_bytes, timeout_s=spec.timeout_s, max_output_bytes=spec.max_output_bytes
        )
        compiled = cache.load(read_module(app, spec))
        built[name] = create_handler(
            engine, compiled, abi=spec.abi, limits=limits, env=dict(spec.env), name=name
        )
    return built


class ReusedReactor:
    """The alternative we did not choose: one reactor instance serving request after request."""

    def __init__(self, handler: ReactorHandler) -> None:
        self.handler = handler
        self.sandbox = handler._sandbox
        self.store, self.ctx = self.sandbox.new_store(None)
        self.instance = self.sandbox.instantiate(self.ctx)

    def handle(self, request: WasmRequest) -> WasmResponse:
        _raw.context_set_epoch_deadline(self.ctx, self.sandbox.ticks)
        return decode_response(self.handler.run_in(self.ctx, self.instance, encode_request(request)))

    def close(self) -> None:
        _raw.store_delete(self.store)


class GenericReactor:
    """The same reactor request through wasmtime-py's own high-level API (what _raw replaces)."""

    def __init__(self, engine: WasmEngine, handler: ReactorHandler, limits: Limits) -> None:
        linker = wasmtime.Linker(engine.engine)
        linker.define_wasi()
        self.pre = linker.instantiate_pre(handler._sandbox.compiled.module)
        self.engine = engine
        self.limits = limits

    def handle(self, request: WasmRequest) -> WasmResponse:
        payload = encode_request(request)
        store = wasmtime.Store(self.engine.engine)
        store.set_limits(memory_size=self.limits.memory_bytes)
        store.set_epoch_deadline(self.engine.deadline_ticks(self.limits.timeout_s))
        exports = self.pre.instantiate(store).exports(store)
        alloc, handle, memory = exports["edge_alloc"], exports["edge_handle"], exports["memory"]
        assert isinstance(alloc, wasmtime.Func)
        assert isinstance(handle, wasmtime.Func)
        assert isinstance(memory, wasmtime.Memory)
        ptr = alloc(store, len(payload))
        memory.write(store, payload, ptr)
        packed = handle(store, ptr, len(payload)) & 0xFFFFFFFFFFFFFFFF
        start = packed >> 32
        return decode_response(bytes(memory.read(store, start, start + (packed & 0xFFFFFFFF))))


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _with_custom_section(wasm: bytes, index: int) -> bytes:
    """The same module with a distinct custom section: a different digest, the same code."""
    name = b"edgecdn-bench"
    payload = bytes([len(name)]) + name + index.to_bytes(4, "little")
    return wasm + b"\x00" + bytes([len(payload)]) + payload


async def _async_case(
    executor: WasmExecutor, handler: Handler, requests: int, concurrency: int
) -> tuple[float, float, float]:
    """Sequential p50/p99 through the executor, then throughput with ``concurrency`` in flight."""
    for _ in range(200):
        await executor.handle(handler, REQUEST)
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        await executor.handle(handler, REQUEST)
        samples.append(time.perf_counter() - start)
    p50, p99 = percentiles(samples)
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await executor.handle(handler, REQUEST)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index in range(concurrency):
            group.create_task(worker(), name=f"bench-worker-{index}")
    return p50, p99, requests / (time.perf_counter() - start)


def _row(name: str, timing: Timing, base: float, budget: str = "") -> str:
    spread = f"{timing.low:.1f} to {timing.high:.1f}" if timing.high > timing.low else ""
    return (
        f"| {name} | {timing.p50:.1f} | {spread} | {timing.p99:.1f} | {timing.p50 / base:.2f}x | {budget} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.wasm_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per case (default 20000)")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds per case (default 20)")
    parser.add_argument("--quick", action="store_true", help="a smoke run with 1000 requests per case")
    args = parser.parse_args()
    requests = 1000 if args.quick else args.requests
    rounds = max(1, args.rounds)
    clock = CpuClock.now()
    app = load_manifest(APP)
    failures = []

    print(
        f"per-request overhead, {requests} requests per case in {rounds} interleaved rounds;"
        " p50 is the median of the rounds' p50s; times in microseconds\n"
    )
    print("| case | p50 µs | rounds' p50 µs | p99 µs | p50 vs Python | budget |")
    print("|---|---:|---:|---:|---:|---|")
    base: Timing | None = None
    for allocator in ("pooling", "on-demand"):
        with (
            WasmEngine(EngineConfig(allocator=allocator)) as engine,
            WasmEngine(EngineConfig(allocator=allocator), native_wasi=False) as wasmtime_wasi_engine,
        ):
            handlers = _handlers(engine, app, ModuleCache(engine))
            cases: dict[str, Callable[[], object]] = {}
            if allocator == "pooling":
                cases["baseline"] = functools.partial(python_geo_hello, REQUEST)
                # WAGI on wasmtime's WASI, interleaved with the rest: what wasi_cgi.c saves.
                on_wasmtime_wasi = _handlers(wasmtime_wasi_engine, app, ModuleCache(wasmtime_wasi_engine))
                on_wasmtime = on_wasmtime_wasi["geo-hello"]
                assert on_wasmtime.handle(REQUEST) == handlers["geo-hello"].handle(REQUEST)
                cases["wasmtime-wasi"] = functools.partial(on_wasmtime.handle, REQUEST)
            for name in ("geo-hello", "geo-hello-rs", "geo-hello-reactor"):
                assert handlers[name].handle(REQUEST).body.startswith("안녕하세요".encode())
                cases[name] = functools.partial(handlers[name].handle, REQUEST)
            timings = timed_rounds(cases, requests, rounds)
            base = timings.get("baseline", base)
            assert base is not None
            if allocator == "pooling":
                print(_row("plain Python geo-hello (baseline)", base, base.p50))
            for name in ("geo-hello", "geo-hello-rs", "geo-hello-reactor"):
                timing = timings[name]
                budget = ""
                if allocator == "pooling" and name == "geo-hello":
                    met = timing.p50 <= WAGI_P50_BUDGET_US
                    budget = f"≤ {WAGI_P50_BUDGET_US:g} µs: {'met' if met else 'MISSED'}"
                    failures += [] if met else ["WAGI p50"]
                if allocator == "pooling" and name == "geo-hello-reactor":
                    met = timing.p50 <= REACTOR_P50_BUDGET_US
                    budget = f"≤ {REACTOR_P50_BUDGET_US:g} µs: {'met' if met else 'MISSED'}"
                    failures += [] if met else ["reactor p50"]
                abi = "reactor" if "reactor" in name else "WAGI"
                print(_row(f"{name} ({abi}, {allocator} allocator)", timing, base.p50, budget))
                if name == "geo-hello" and "wasmtime-wasi" in timings:
                    label = "geo-hello (WAGI on wasmtime's WASI, not chosen)"
                    print(_row(label, timings["wasmtime-wasi"], base.p50))
            if allocator == "pooling":
                reactor = handlers["geo-hello-reactor"]
                assert isinstance(reactor, ReactorHandler)
                reused = ReusedReactor(reactor)
                try:
                    # The bump allocator never frees: cap the run so the instance stays small.
                    reuse = timed(functools.partial(reused.handle, REQUEST), min(requests, 2000))
                finally:
                    reused.close()
                print(_row("geo-hello-reactor, ONE reused instance (not chosen)", reuse, base.p50))
                generic = GenericReactor(engine, reactor, reactor.limits)
                assert generic.handle(REQUEST) == reactor.handle(REQUEST)
                generic_timing = timed(functools.partial(generic.handle, REQUEST), requests)
                print(
                    _row(
                        "geo-hello-reactor via wasmtime-py's generic API (not chosen)",
                        generic_timing,
                        base.p50,
                    )
                )
                _print_components(engine, base, max(50, requests // 40), rounds)
                executor_rows = _executor_rows(handlers["geo-hello"], requests)

    print("\nexecution under asyncio (geo-hello over WAGI, pooling):\n")
    print("| placement | sequential p50 µs | p99 µs | requests/s, 50 in flight |")
    print("|---|---:|---:|---:|")
    for row in executor_rows:
        print(row)

    print("\nAOT cache and memory:\n")
    # In a process of its own: the cases above (the components above all, 37 MB of CPython
    # compiled to wasm) leave this one's RSS far above what 20 modules cost a node.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as fresh:
        lines, missed = fresh.submit(_cache_and_rss, APP).result()
    print("\n".join(lines))
    failures += missed
    print(f"\nhost steal during the run: {CpuClock.now().steal_percent_since(clock):.1f}% of CPU time")
    if failures:
        print(f"\nbudgets missed: {', '.join(failures)}")
        return 1
    return 0


def _print_components(engine: WasmEngine, base: Timing, requests: int, rounds: int) -> None:
    """The greeting as wasi-http components, interleaved with each other, in the same table."""
    cache = ComponentCache(engine, ROOT / ".edgecdn" / "bench-components")  # compiling takes 5-20 s
    limits = Limits(memory_bytes=64 << 20, timeout_s=1.0, max_output_bytes=4 << 20)
    cases: dict[str, Callable[[], object]] = {}
    for name, source in COMPONENTS.items():
        handler = HttpComponentHandler(
            engine, cache.load_component_file(ROOT / "handlers" / "components" / source), limits=limits
        )
        assert handler.handle(REQUEST).body.startswith("안녕하세요".encode())
        cases[name] = functools.partial(handler.handle, REQUEST)
    for name, timing in timed_rounds(cases, requests, min(rounds, requests // 10)).items():
        print(_row(f"{name}, {requests} requests", timing, base.p50))


def _executor_rows(handler: Handler, requests: int) -> list[str]:
    rows = []
    modes: tuple[ExecutionMode, ...] = ("inline", "thread")
    for mode in modes:
        executor = WasmExecutor(ExecutorConfig(mode=mode, max_workers=2))
        try:
            p50, p99, rps = asyncio.run(_async_case(executor, handler, min(requests, 10_000), 50))
        finally:
            executor.close()
        label = "inline on the event loop" if mode == "inline" else "thread pool (2 workers)"
        rows.append(f"| {label} | {p50:.1f} | {p99:.1f} | {rps:,.0f} |")
    return rows


def _cache_and_rss(app_path: Path) -> tuple[list[str], list[str]]:
    """The AOT cache's compile and hit times, and RSS with 20 modules: report lines, budgets missed."""
    app = load_manifest(app_path)
    lines: list[str] = []
    failures = []
    wasm = read_module(app, app.modules["geo-hello"])
    rss_start = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp, WasmEngine() as engine:
        rss_engine = _rss_mb()
        start = time.perf_counter()
        ModuleCache(engine, Path(tmp)).load(wasm)
        compile_ms = (time.perf_counter() - start) * 1000
        loads = []
        for _ in range(50):
            cache = ModuleCache(engine, Path(tmp))
            start = time.perf_counter()
            cache.load(wasm)
            loads.append(time.perf_counter() - start)
        hit_p50, hit_p99 = percentiles(loads)
        hits = f"p50 {hit_p50:.0f} µs, p99 {hit_p99:.0f} µs"
        lines.append(f"- geo-hello compile: {compile_ms:.1f} ms; AOT cache hit (disk): {hits}")

        sources = [read_module(app, spec) for spec in app.modules.values()]
        cache = ModuleCache(engine, Path(tmp))
        handlers = []
        for index in range(20):
            spec = list(app.modules.values())[index % len(sources)]
            compiled = cache.load(_with_custom_section(sources[index % len(sources)], index))
            handler = create_handler(engine, compiled, abi=spec.abi, env=dict(spec.env), name=f"m{index}")
            handler.handle(REQUEST)
            handlers.append(handler)
        gc.collect()
        rss = _rss_mb()
        met = rss < RSS_BUDGET_MB
        failures += [] if met else ["RSS with 20 modules"]
        lines.append(
            f"- RSS: {rss_start:.0f} MB before the engine (Python + libraries), {rss_engine:.0f} MB with the"
            f" engine, {rss:.0f} MB with 20 modules loaded and each run once"
            f" (budget < {RSS_BUDGET_MB:g} MB: {'met' if met else 'MISSED'})"
        )
    return lines, failures


if __name__ == "__main__":
    raise SystemExit(main())
