"""The committed example handlers, run for real: geo-hello (C, Rust, reactor) and sensor-stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wasmtime

from manifest import AppManifest, load_manifest, read_module
from wasm_host import Handler, Limits, ModuleCache, WasmEngine, WasmRequest, create_handler

APP = Path(__file__).resolve().parents[2] / "handlers" / "geo-hello" / "app.toml"

GREETINGS = {
    "KR": ("안녕하세요", "ko"),
    "JP": ("こんにちは", "ja"),
    "US": ("Hello", "en"),
    "GB": ("Hello", "en"),
    "DE": ("Hallo", "de"),
    "FR": ("Bonjour", "fr"),
    "BR": ("Olá", "pt"),
    "CN": ("你好", "zh"),
}
GEO_HELLO = ["geo-hello", "geo-hello-rs", "geo-hello-reactor"]


@pytest.fixture(scope="module")
def app() -> AppManifest:
    return load_manifest(APP)


@pytest.fixture(scope="module")
def handlers(engine: WasmEngine, app: AppManifest) -> dict[str, Handler]:
    """Every module of the shipped app, with the limits and grants its manifest gives it."""
    cache = ModuleCache(engine)
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


def _hello(country: str | None, accept: str = "text/html", region: str = "ap-northeast") -> WasmRequest:
    headers = [("accept", accept), ("x-edge-region", region), ("user-agent", "pytest")]
    if country is not None:
        headers.append(("cf-ipcountry", country))
    return WasmRequest(
        method="GET",
        path="/hello",
        headers=tuple(headers),
        remote_addr="127.0.0.1",
        matched_route="/hello",
        full_url="http://edge.test/hello",
    )


@pytest.mark.parametrize("module", GEO_HELLO)
@pytest.mark.parametrize("country", sorted(GREETINGS))
def test_geo_hello_greets_in_the_clients_language(
    handlers: dict[str, Handler], module: str, country: str
) -> None:
    greeting, language = GREETINGS[country]
    response = handlers[module].handle(_hello(country, region="eu-west"))
    assert response.status == 200
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert response.header("content-language") == language
    assert response.header("x-edge-region") == "eu-west"
    assert "cf-ipcountry" in (response.header("vary") or "")
    text = response.body.decode()
    assert text == f"{greeting}! Your country: {country}. Served by edge region eu-west.\n"


@pytest.mark.parametrize("module", GEO_HELLO)
def test_geo_hello_answers_json_when_asked(handlers: dict[str, Handler], module: str) -> None:
    response = handlers[module].handle(_hello("KR", accept="text/html, application/json;q=0.9"))
    assert response.header("content-type") == "application/json"
    assert json.loads(response.body) == {
        "greeting": "안녕하세요",
        "language": "ko",
        "country": "KR",
        "region": "ap-northeast",
    }
    refused = handlers[module].handle(_hello("KR", accept="application/json;q=0, text/plain"))
    assert refused.header("content-type") == "text/plain; charset=utf-8"


@pytest.mark.parametrize("module", GEO_HELLO)
@pytest.mark.parametrize("country", [None, "", "ZZ", "kr", "KOR", "K\x01"])
def test_geo_hello_default_greeting(handlers: dict[str, Handler], module: str, country: str | None) -> None:
    response = handlers[module].handle(_hello(country, accept="application/json"))
    body = json.loads(response.body)
    assert body["greeting"] == "Hello"
    assert body["language"] == "en"
    assert body["country"] == ("ZZ" if country == "ZZ" else "unknown")


@pytest.mark.parametrize("module", GEO_HELLO)
def test_geo_hello_never_echoes_unsafe_region_text(handlers: dict[str, Handler], module: str) -> None:
    response = handlers[module].handle(_hello("JP", region="evil\x7f\x1b[31m", accept="application/json"))
    assert response.header("x-edge-region") == "unknown"
    assert json.loads(response.body)["region"] == "unknown"


def _stats(body: bytes, method: str = "POST") -> WasmRequest:
    return WasmRequest(
        method=method,
        path="/sensors/stats",
        headers=(("content-type", "application/json"),),
        body=body,
        matched_route="/sensors/stats",
    )


def test_sensor_stats_normal_and_warning(handlers: dict[str, Handler]) -> None:
    readings = [
        {"temperature": 21.5, "humidity": 40, "timestamp": 1700000000},
        {"temperature": 24.5, "humidity": 50, "timestamp": "2026-11-23T03:00:00Z"},
    ]
    response = handlers["sensor-stats"].handle(_stats(json.dumps(readings).encode()))
    assert response.status == 200
    assert response.header("content-type") == "application/json"
    assert json.loads(response.body) == {
        "count": 2,
        "average_temperature": 23,
        "max_temperature": 24.5,
        "average_humidity": 45,
        "status": "normal",
    }
    hot = [{"temperature": t, "humidity": 10, "timestamp": i} for i, t in enumerate([29.0, 31.0, 33.5])]
    answer = json.loads(handlers["sensor-stats"].handle(_stats(json.dumps(hot).encode())).body)
    assert answer["status"] == "warning"
    assert answer["average_temperature"] == 31.17


def test_sensor_stats_threshold_is_strictly_above_30(handlers: dict[str, Handler]) -> None:
    exactly = json.dumps([{"temperature": 30, "humidity": 1, "timestamp": 0}]).encode()
    assert json.loads(handlers["sensor-stats"].handle(_stats(exactly)).body)["status"] == "normal"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "unexpected end of input"),
        (b"{not json", "malformed JSON at byte 1"),
        (b'{"temperature": 1}', "expected a JSON array"),
        (b"[]", "no readings"),
        (b"[1]", "reading 0 is not an object"),
        (b'[{"humidity": 1, "timestamp": 0}]', 'reading 0: \\"temperature\\" is missing'),
        (b'[{"temperature": "hot", "humidity": 1, "timestamp": 0}]', 'reading 0: \\"temperature\\" must be'),
        (b'[{"temperature": 1, "humidity": 1}]', 'reading 0: \\"timestamp\\" is missing'),
        (b'[{"temperature": 1, "humidity": 1, "timestamp": 0}] x', "unexpected data"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_sensor_stats_malformed_input_is_400(handlers: dict[str, Handler], body: bytes, message: str) -> None:
    response = handlers["sensor-stats"].handle(_stats(body))
    assert response.status == 400
    assert message in response.body.decode()
    assert "error" in json.loads(response.body)


def test_sensor_stats_wants_post(handlers: dict[str, Handler]) -> None:
    response = handlers["sensor-stats"].handle(_stats(b"", method="GET"))
    assert response.status == 405
    assert response.header("allow") == "POST"


def test_shipped_app_routes(app: AppManifest) -> None:
    assert (app.name, app.version) == ("geo-hello", "1.0.0")
    for path, module in [
        ("/hello", "geo-hello"),
        ("/hello/ko", "geo-hello"),
        ("/hello-rs", "geo-hello-rs"),
        ("/hello-fast", "geo-hello-reactor"),
        ("/sensors/stats", "sensor-stats"),
    ]:
        route = app.match(path)
        assert route is not None
        assert route.module == module
    assert app.match("/other") is None


@pytest.mark.parametrize("module", ["geo-hello", "geo-hello-rs"])
def test_granted_environment_reaches_the_real_module(
    engine: WasmEngine, app: AppManifest, module: str
) -> None:
    compiled = ModuleCache(engine).load(read_module(app, app.modules[module]))
    granted = create_handler(engine, compiled, env={"GREETING_DEFAULT": "Servus"})
    bare = create_handler(engine, compiled)
    assert granted.handle(_hello("ZZ")).body.startswith(b"Servus! ")
    assert bare.handle(_hello("ZZ")).body.startswith(b"Hello! ")
    assert granted.handle(_hello("KR")).body.startswith("안녕하세요! ".encode())


@pytest.mark.parametrize("module", [*GEO_HELLO, "sensor-stats"])
def test_shipped_handlers_start_with_little_memory(engine: WasmEngine, app: AppManifest, module: str) -> None:
    """Every request pays for a module's initial memory (a fresh instance in a cleared pool
    slot), so handlers/build.sh links small stacks: toolchain defaults gave 2 pages for C and
    17 for Rust (docs/abi.md)."""
    compiled = ModuleCache(engine).load(read_module(app, app.modules[module]))
    memories = [exp.type for exp in compiled.module.exports if isinstance(exp.type, wasmtime.MemoryType)]
    assert len(memories) == 1
    assert memories[0].limits.min <= 2, f"{module} starts with {memories[0].limits.min} pages"


def test_sensor_stats_deepest_allowed_nesting_fits_its_small_stack(handlers: dict[str, Handler]) -> None:
    # The parser recurses once per level, up to its limit; the deepest document it accepts
    # must be parsed in full within the 64 KiB stack (then refused as not readings), and a
    # deeper one refused by the limit, never by a stack-overflow trap.
    for depth, reason in [
        (65, "reading 0 is not an object"),
        (66, "nested too deeply"),
        (10_000, "nested too deeply"),
    ]:
        response = handlers["sensor-stats"].handle(_stats(b"[" * depth + b"]" * depth))
        assert response.status == 400
        assert reason in json.loads(response.body)["error"], depth
