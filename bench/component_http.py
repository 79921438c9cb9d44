"""Per-request cost of the wasi-http ABI (a Spin SDK component), side by side with WAGI and reactor.

``.venv/bin/python -m bench.component_http`` (``--requests N``). The same request (a
client in Seoul with every geo header, ``bench.wasm_overhead.REQUEST``) goes through:
the geo greeting as a Spin SDK (Python) component on our ``wasi:http`` host, with host
functions whose types are cached (``component_calls``) and with wasmtime-py's own
``add_func`` (types rebuilt per call); the same logic as a componentize-js component;
only instantiating the Python one; the C geo-hello as WAGI and
as a reactor; and the plain Python function. It reports p50/p99 and each case's ratio
to the component, plus a 1 MiB streamed body and the artefact load time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import wasmtime

from bench.geo_request import REQUEST, python_geo_hello
from bench.sampling import percentiles
from wasm_host import (
    EngineConfig,
    Limits,
    ModuleCache,
    WasmEngine,
    WasmRequest,
    component_calls,
    component_wasi,
    create_handler,
)
from wasm_host.component_cache import ComponentCache
from wasm_host.component_handler import HttpComponentHandler
from wasm_host.config import MiB

ROOT = Path(__file__).resolve().parent.parent
GEO = ROOT / "handlers" / "components" / "geo-greeting" / "geo_greeting.wasm"
GEO_JS = ROOT / "handlers" / "components" / "geo-greeting-js" / "geo_greeting_js.wasm"
TEST_KIT = ROOT / "handlers" / "components" / "misbehave" / "misbehave.wasm"
LIMITS = Limits(memory_bytes=64 * MiB, timeout_s=1.0, max_output_bytes=4 * MiB)


def sample(call: object, count: int) -> tuple[float, float]:
    assert callable(call)
    for _ in range(min(20, count)):
        call()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return percentiles(times)


def host_share(handler: HttpComponentHandler, count: int) -> tuple[float, float, float]:
    """Host calls per request, their µs per request, and their share of the request: what a
    host layer in native code instead of Python could save at most. The time inside each C
    callback (``component_calls``) is summed around wasmtime-py's ``catch_exceptions``."""
    spent = [0.0, 0]
    calls: Any = component_calls  # patched for the measurement, restored after
    original = calls.catch_exceptions

    def timed(context: object, run: object) -> object:
        start = time.perf_counter()
        try:
            return original(context, run)
        finally:
            spent[0] += time.perf_counter() - start
            spent[1] += 1

    for _ in range(20):
        handler.handle(REQUEST)
    calls.catch_exceptions = timed
    try:
        start = time.perf_counter()
        for _ in range(count):
            handler.handle(REQUEST)
        total = time.perf_counter() - start
    finally:
        calls.catch_exceptions = original
    return spent[1] / count, spent[0] / count * 1e6, spent[0] / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".edgecdn" / "bench-components")
    args = parser.parse_args()
    engine = WasmEngine(EngineConfig())
    components = ComponentCache(engine, args.cache_dir)
    start = time.perf_counter()
    geo = components.load_component_file(GEO)
    print(
        f"geo greeting component: {geo.size_bytes / 1e6:.1f} MB, loaded ({geo.origin}) in "
        f"{(time.perf_counter() - start) * 1e3:.1f} ms"
    )
    results: dict[str, tuple[float, float]] = {}

    component_wasi.CACHED_TYPES = True
    cached = HttpComponentHandler(engine, geo, limits=LIMITS)
    assert cached.handle(REQUEST).body.decode().startswith("안녕하세요")
    results["component (cached host types)"] = sample(lambda: cached.handle(REQUEST), args.requests)
    component_wasi.CACHED_TYPES = False
    generic = HttpComponentHandler(engine, geo, limits=LIMITS)
    component_wasi.CACHED_TYPES = True
    results["component (wasmtime-py add_func)"] = sample(lambda: generic.handle(REQUEST), args.requests)

    geo_js = HttpComponentHandler(engine, components.load_component_file(GEO_JS), limits=LIMITS)
    assert geo_js.handle(REQUEST).body.decode().startswith("안녕하세요")
    results["JS component (componentize-js)"] = sample(lambda: geo_js.handle(REQUEST), args.requests)

    def instantiate_only() -> None:
        store = wasmtime.Store(engine.engine)
        store.set_limits(memory_size=LIMITS.memory_bytes)
        store.set_epoch_deadline(1000)
        cached._linker.instantiate(store, geo.component)
        store.close()

    results["component: store + instantiate only"] = sample(instantiate_only, args.requests)

    with tempfile.TemporaryDirectory() as tmp:
        modules = ModuleCache(engine, Path(tmp))
        wagi = create_handler(
            engine,
            modules.load_file(ROOT / "handlers" / "geo-hello" / "geo_hello.wasm"),
            abi="wagi",
            limits=LIMITS,
        )
        reactor = create_handler(
            engine,
            modules.load_file(ROOT / "handlers" / "geo-hello-reactor" / "geo_hello_reactor.wasm"),
            abi="reactor",
            limits=LIMITS,
        )
        results["WAGI geo-hello (C)"] = sample(lambda: wagi.handle(REQUEST), args.requests)
        results["reactor geo-hello (C)"] = sample(lambda: reactor.handle(REQUEST), args.requests)
    results["plain Python function"] = sample(lambda: python_geo_hello(REQUEST), args.requests)

    streamer = HttpComponentHandler(engine, components.load_component_file(TEST_KIT), limits=LIMITS)
    big = WasmRequest(method="GET", path="/stream", query=f"size={1 << 20}")
    assert len(streamer.handle(big).body) == 1 << 20
    results["component: 1 MiB streamed body"] = sample(
        lambda: streamer.handle(big), max(10, args.requests // 10)
    )

    print(f"{'host functions':40} {'calls/req':>10} {'us/req':>10} {'share':>16}")
    for name, handler in (("Python component", cached), ("JS component", geo_js)):
        calls, micros, share = host_share(handler, args.requests)
        print(f"{name:40} {calls:10.0f} {micros:10.1f} {share:16.0%}")

    base = results["component (cached host types)"][0]
    print(f"{'case':40} {'p50 us':>10} {'p99 us':>10} {'p50 / component':>16}")
    for name, (p50, p99) in results.items():
        print(f"{name:40} {p50:10.1f} {p99:10.1f} {p50 / base:16.3f}")
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
