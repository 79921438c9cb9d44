"""A small real HTTP server for the load generator's tests.

``python -m tests.simulator.load.echo_server --ready-file PATH`` serves:

- ``/`` and anything else: ``ok`` with ``x-edge-region: test-region``;
- ``/route``: as a router would, ``x-edge-route: region=<by client>; node=n; reason=nearest``
  where the region is ``region-<third octet group N of 127.N.x.x>``;
- ``/status/CODE``: that status;
- ``/chunked``: a chunked body saying ``country=<first octet-derived tag>``;
- ``/close``: answers with ``connection: close``;
- ``/app/RUN?canary=N&from=A&to=B&bare=M``: as ``/route``, plus ``x-edge-app`` as edge nodes
  in the middle of a rollout and its rollback would send it: the answers number A to B-1
  (counted per RUN and client block) to block N say ``geo-hello@1.1.0``, every other answer
  ``geo-hello@1.0.0``, and block M's answers have no header (an older node);
- ``/cache/RUN?bypass=B&none=N``: as ``/route``, plus ``x-cache`` as an edge node's cache
  would send it: each client block's answers (counted per RUN) cycle through HIT, HIT,
  REVALIDATED, MISS, STALE; block B's are all BYPASS and block N's have no header;
- ``/count/RUN``: ``ok``, counted per RUN; ``/answered/RUN`` says how many so far (tests wait
  on it for a run to be under way, rather than sleeping and hoping).
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from pathlib import Path

from aiohttp import web

from runtime.process import serve_until_signalled
from runtime.ready import ready_file_reporter

ANSWERED = web.AppKey("answered", Counter[tuple[str, str]])
OLD, NEW = "geo-hello@1.0.0", "geo-hello@1.1.0"
CACHE_CYCLE = ("HIT", "HIT", "REVALIDATED", "MISS", "STALE")


def _client_block(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return str(peer[0]).split(".")[1] if peer else "?"


async def ok(_: web.Request) -> web.Response:
    return web.Response(text="ok", headers={"x-edge-region": "test-region"})


async def route(request: web.Request) -> web.Response:
    region = f"region-{_client_block(request)}"
    return web.Response(
        text="routed",
        headers={"x-edge-route": f"region={region}; node={region}-a; reason=nearest; rtt_ms=12.5"},
    )


async def app_version(request: web.Request) -> web.Response:
    block = _client_block(request)
    region = f"region-{block}"
    query = request.query
    counted = request.app[ANSWERED]
    key = (request.match_info["run"], block)
    number = counted[key]
    counted[key] += 1
    headers = {"x-edge-route": f"region={region}; node={region}-a; reason=nearest; rtt_ms=12.5"}
    if block != query.get("bare"):
        rolled = block == query.get("canary") and int(query["from"]) <= number < int(query["to"])
        headers["x-edge-app"] = NEW if rolled else OLD
    return web.Response(text="app", headers=headers)


async def cache_result(request: web.Request) -> web.Response:
    block = _client_block(request)
    region = f"region-{block}"
    counted = request.app[ANSWERED]
    key = ("cache/" + request.match_info["run"], block)
    number = counted[key]
    counted[key] += 1
    headers = {"x-edge-route": f"region={region}; node={region}-a; reason=nearest; rtt_ms=12.5"}
    if block == request.query.get("bypass"):
        headers["x-cache"] = "BYPASS"
    elif block != request.query.get("none"):
        headers["x-cache"] = CACHE_CYCLE[number % len(CACHE_CYCLE)]
    return web.Response(text="cached", headers=headers)


async def counted_ok(request: web.Request) -> web.Response:
    request.app[ANSWERED][("count/" + request.match_info["run"], "")] += 1
    return web.Response(text="ok", headers={"x-edge-region": "test-region"})


async def answered(request: web.Request) -> web.Response:
    return web.Response(text=str(request.app[ANSWERED][("count/" + request.match_info["run"], "")]))


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="as asked")


async def chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"x-edge-region": "test-region"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"block=")
    await response.write(_client_block(request).encode())
    await response.write_eof()
    return response


async def close(_: web.Request) -> web.Response:
    return web.Response(text="bye", headers={"connection": "close", "x-edge-region": "test-region"})


def main() -> None:
    parser = argparse.ArgumentParser(prog="echo-server")
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()

    async def serve(stop: asyncio.Event) -> None:
        app = web.Application()
        app[ANSWERED] = Counter()
        app.router.add_get("/route", route)
        app.router.add_get("/app/{run}", app_version)
        app.router.add_get("/cache/{run}", cache_result)
        app.router.add_get("/count/{run}", counted_ok)
        app.router.add_get("/answered/{run}", answered)
        app.router.add_get("/status/{code}", status)
        app.router.add_get("/chunked", chunked)
        app.router.add_get("/close", close)
        app.router.add_route("*", "/{tail:.*}", ok)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        ready_file_reporter("echo-server", args.ready_file)({"http": f"http://{host}:{port}"})
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    serve_until_signalled(serve)


if __name__ == "__main__":
    main()
