"""The peer of the edge-node benchmark: a plain aiohttp handler returning fixed bytes.

``python -m bench.plain_server --body-file F --content-type T --ready-file R [--loop uvloop|asyncio]``.
It uses aiohttp's ordinary ``web.Application`` with one route, as an aiohttp user would, on
uvloop by default: the loop the edge node runs on (``serve_until_signalled(fast_loop=True)``),
so the peer runs at its best too.
``--loop asyncio`` runs it on asyncio's default loop instead. The ready report names the loop
that actually ran (``loop``: the running loop's module and class).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from aiohttp import web

from runtime.process import serve_until_signalled
from runtime.ready import ReadyReport, write_ready_file

LOOPS = ("uvloop", "asyncio")


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop.Loop`` or ``asyncio.unix_events._UnixSelectorEventLoop``: what really runs."""
    kind = type(loop)
    return f"{kind.__module__}.{kind.__qualname__}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="plain-server")
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--content-type", default="text/plain; charset=utf-8")
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--loop", choices=LOOPS, default="uvloop", help="event loop (default: %(default)s)")
    args = parser.parse_args()
    body = args.body_file.read_bytes()
    content_type = args.content_type

    async def hello(_: web.Request) -> web.Response:
        response = web.Response(body=body)
        response.headers["content-type"] = content_type
        return response

    async def serve(stop: asyncio.Event) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", hello)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        host, port = runner.addresses[0][:2]
        if args.ready_file is not None:
            report = ReadyReport(
                service="plain-aiohttp",
                pid=os.getpid(),
                addresses={"http": f"http://{host}:{port}"},
                extra={"loop": loop_name(asyncio.get_running_loop())},
            )
            write_ready_file(args.ready_file, report)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    serve_until_signalled(serve, fast_loop=args.loop == "uvloop")


if __name__ == "__main__":
    main()
