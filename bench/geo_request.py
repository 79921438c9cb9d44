"""The request the in-process benchmarks time, and their baseline.

``REQUEST`` is what a node hands a handler for a client in Seoul (every geo and edge header
it adds); ``python_geo_hello`` is geo-hello's logic as a plain Python function over it, the
floor each wasm case is a ratio to (bench.wasm_overhead, bench.component_http).
"""

from __future__ import annotations

from wasm_host import WasmRequest, WasmResponse

# What a node hands a handler for a client in Seoul: the client's own headers, then every
# geo and edge header the node adds (edge_node.geo_headers), as in a served request.
REQUEST = WasmRequest(
    method="GET",
    path="/hello",
    headers=(
        ("host", "edge.local"),
        ("user-agent", "bench/1.0"),
        ("accept", "text/html"),
        ("cf-ipcountry", "KR"),
        ("x-geo-country", "KR"),
        ("x-geo-continent", "AS"),
        ("x-geo-city", "Seoul"),
        ("x-geo-latitude", "37.5665"),
        ("x-geo-longitude", "126.9780"),
        ("x-edge-region", "ap-northeast-2"),
        ("x-edge-pop", "Seoul"),
        ("x-edge-node", "ap-northeast-2-a"),
    ),
    remote_addr="127.82.0.1",
    server_name="edge.local",
    server_port=8080,
    matched_route="/hello",
    full_url="http://edge.local:8080/hello",
)

_GREETINGS = {"KR": ("안녕하세요", "ko"), "JP": ("こんにちは", "ja"), "US": ("Hello", "en")}


def python_geo_hello(request: WasmRequest) -> WasmResponse:
    """The baseline: geo-hello's logic as a plain Python function over the same values."""
    country = request.header("cf-ipcountry") or ""
    region = request.header("x-edge-region") or "unknown"
    greeting, language = _GREETINGS.get(country, ("Hello", "en"))
    accept = request.header("accept") or ""
    headers: tuple[tuple[str, str], ...] = (
        ("vary", "accept, cf-ipcountry, x-edge-region"),
        ("content-language", language),
        ("x-edge-region", region),
    )
    if "application/json" in accept:
        body = f'{{"greeting":"{greeting}","country":"{country}","region":"{region}"}}\n'
        return WasmResponse(
            status=200, headers=(*headers, ("content-type", "application/json")), body=body.encode()
        )
    text = f"{greeting}! Your country: {country}. Served by edge region {region}.\n"
    return WasmResponse(
        status=200, headers=(*headers, ("content-type", "text/plain; charset=utf-8")), body=text.encode()
    )
