"""The peer of the edge-node benchmark: a plain aiohttp handler returning fixed bytes.

``python -m bench.plain_server --body-file F --content-type T --ready-file R``.
It uses aiohttp's ordinary ``web.Application`` with one route, as an aiohttp user would.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiohttp import web

from runtime.process import serve_until_signalled
from runtime.ready import ready_file_reporter


def main() -> None:
    parser = argparse.ArgumentParser(prog="plain-server")
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--content-type", default="text/plain; charset=utf-8")
    parser.add_argument("--ready-file", type=Path)
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
        ready_file_reporter("plain-aiohttp", args.ready_file)({"http": f"http://{host}:{port}"})
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    serve_until_signalled(serve)


if __name__ == "__main__":
    main()
