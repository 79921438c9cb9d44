"""``python -m simulator.world_origin``: the local world's origin, a small shop behind the CDN.

The world's app routes ``/shop/...`` to it (``simulator.world_app``), so the edge nodes'
HTTP cache has a real origin to cache, validate, collapse, purge and fall back from
(docs/cache.md). What it answers is chosen to show each of those:

- ``GET /shop/products/N`` (N in 1..100): a product whose name follows ``accept-language``
  (``Vary``), with an ``ETag`` and ``Last-Modified`` (validation: a matching
  ``If-None-Match`` gets a 304), cache tags ``product-N`` and ``products`` (purge by tag),
  and ``stale-while-revalidate`` / ``stale-if-error`` (stale answers);
- ``POST /shop/products/N``: a new version of the product (the node invalidates what it
  stored for that URL, RFC 9111 4.4);
- ``GET /shop/news``: fresh for 10 s only, tagged ``news``;
- ``GET /shop/weather?country=KR``: that country's weather today as JSON, fresh for 60 s,
  tagged ``weather``: what ``handlers/geo-weather`` fetches through the edge cache
  (docs/abi.md, "Outbound HTTP");
- ``GET /shop/``: what it serves; ``GET /healthz``: that it runs (``edgecdn status``).

Every answer says how many requests the origin has served (``x-origin-requests``): a cache
hit never reaches it, so the number does not move.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

from manifest.model import Route
from runtime.cli import add_flag, add_logging_flags, configure_logging, fail, new_parser
from runtime.files import write_bytes_atomically
from runtime.process import StopEvent, serve_until_signalled, wait_for_stop
from runtime.ready import ReadyCallback, ready_file_reporter

PROG = "world-origin"
SERVICE_NAME = "world-origin"
PRODUCTS = 100
# The route the world adds to the app it deploys, and where the origin's port is kept: the
# control plane keeps that app across runs of the world, so the origin comes back on it.
ROUTE_PATH = "/shop/..."
PORT_FILE = "origin.json"
# What clients in each language read; anything else gets English.
NAMES = {"ko": "우산", "ja": "傘", "en": "Umbrella"}
PRODUCT_CACHING = "public, max-age=60, stale-while-revalidate=30, stale-if-error=86400"
NEWS_CACHING = "public, max-age=10, stale-while-revalidate=20"
WEATHER_CACHING = "public, max-age=60, stale-if-error=600"
# The capital-ish city a country's weather is told for; other countries get "unknown".
CITIES = {
    "KR": "Seoul", "JP": "Tokyo", "CN": "Beijing", "SG": "Singapore", "IN": "Mumbai", "AU": "Sydney",
    "US": "New York", "CA": "Toronto", "BR": "São Paulo", "DE": "Frankfurt", "FR": "Paris",
    "GB": "London", "ZA": "Johannesburg",
}  # fmt: skip
SKIES = ("sunny", "cloudy", "rain", "snow", "windy", "fog")


def origin_route(url: str) -> Route:
    return Route(path=ROUTE_PATH, origin=url)


def remembered_port(state_dir: Path) -> int:
    """The port of the last run's origin (0: none kept, or unreadable)."""
    try:
        port = json.loads((state_dir / PORT_FILE).read_text(encoding="utf-8"))["port"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return port if isinstance(port, int) and 0 < port < 65536 else 0


def remember_port(state_dir: Path, port: int) -> None:
    write_bytes_atomically(state_dir / PORT_FILE, json.dumps({"port": port}).encode())


def language(accept_language: str) -> str:
    """The first of the client's languages the shop has (RFC 9110 12.5.4, without weights)."""
    for item in accept_language.split(","):
        tag = item.split(";")[0].strip().lower().split("-")[0]
        if tag in NAMES:
            return tag
    return "en"


@dataclass
class Shop:
    """The shop's state: product versions (bumped by POST) and the requests served."""

    started: float = field(default_factory=time.time)
    versions: dict[int, int] = field(default_factory=dict)
    changed_at: dict[int, float] = field(default_factory=dict)
    requests: int = 0

    def counted(self, response: web.Response) -> web.Response:
        self.requests += 1
        response.headers["x-origin-requests"] = str(self.requests)
        return response

    async def index(self, request: web.Request) -> web.Response:
        return self.counted(
            _json(
                {
                    "products": f"/shop/products/1 .. /shop/products/{PRODUCTS}",
                    "news": "/shop/news",
                    "weather": "/shop/weather?country=KR",
                },
                headers={"cache-control": "public, max-age=300"},
            )
        )

    async def product(self, request: web.Request) -> web.Response:
        number = _product_number(request)
        version = self.versions.get(number, 1)
        etag = f'"p{number}-v{version}"'
        lang = language(request.headers.get("accept-language", ""))
        headers = {
            "cache-control": PRODUCT_CACHING,
            "etag": etag,
            "last-modified": formatdate(self.changed_at.get(number, self.started), usegmt=True),
            "vary": "accept-language",
            "cache-tag": f"product-{number}, products",
            "content-language": lang,
        }
        if etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
            return self.counted(web.Response(status=304, headers=headers))
        body = {"product": number, "name": NAMES[lang], "version": version, "served_at": _now()}
        return self.counted(_json(body, headers=headers))

    async def update(self, request: web.Request) -> web.Response:
        number = _product_number(request)
        self.versions[number] = self.versions.get(number, 1) + 1
        self.changed_at[number] = time.time()
        body = {"product": number, "version": self.versions[number]}
        return self.counted(_json(body, headers={"cache-control": "no-store"}))

    async def weather(self, request: web.Request) -> web.Response:
        country = request.query.get("country", "")
        if len(country) != 2 or not country.isascii() or not country.isupper():
            raise web.HTTPBadRequest(text=f"country={country!r}: expected two upper-case letters (KR)\n")
        body = {**weather_of(country, int(time.time() // 86400)), "served_at": _now()}
        return self.counted(_json(body, headers={"cache-control": WEATHER_CACHING, "cache-tag": "weather"}))

    async def news(self, request: web.Request) -> web.Response:
        body = {"headline": "Edge caches are fast", "served_at": _now()}
        return self.counted(_json(body, headers={"cache-control": NEWS_CACHING, "cache-tag": "news"}))


def weather_of(country: str, day: int) -> dict[str, object]:
    """A country's weather on ``day`` (days since the epoch): made up, but the same all day,
    so every edge node caches the same answer."""
    seed = ord(country[0]) * 31 + ord(country[1]) * 7 + day
    return {
        "country": country,
        "city": CITIES.get(country, "unknown"),
        "sky": SKIES[seed % len(SKIES)],
        "temperature_c": seed % 35 - 5,
    }


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _product_number(request: web.Request) -> int:
    text = request.match_info["number"]
    if not text.isdigit() or not 1 <= int(text) <= PRODUCTS:
        raise web.HTTPNotFound(text=f"no product {text!r}: products are 1..{PRODUCTS}\n")
    return int(text)


def _json(body: object, *, headers: dict[str, str]) -> web.Response:
    # Korean and Japanese names as they are, readable in curl's output.
    return web.json_response(body, headers=headers, dumps=functools.partial(json.dumps, ensure_ascii=False))


def _now() -> str:
    return formatdate(time.time(), usegmt=True)


def application(shop: Shop) -> web.Application:
    app = web.Application()
    app.router.add_get("/healthz", _healthz)  # what `edgecdn status` asks every process
    app.router.add_get("/shop/", shop.index)
    app.router.add_get("/shop/news", shop.news)
    app.router.add_get("/shop/weather", shop.weather)
    app.router.add_get("/shop/products/{number}", shop.product)
    app.router.add_post("/shop/products/{number}", shop.update)
    return app


async def run(
    host: str, port: int, *, ready: ReadyCallback | None = None, stop: StopEvent | None = None
) -> None:
    runner = web.AppRunner(application(Shop()), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host}:{bound_port}"
        if ready is not None:
            ready({"http": url})
        await wait_for_stop(stop)
    finally:
        await runner.cleanup()


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, "The local world's origin: a small shop the edge nodes cache (/shop/...).")
    add_flag(parser, "--host", env="WORLD_ORIGIN_HOST", default="127.0.0.1", help="address to listen on")
    add_flag(parser, "--port", env="WORLD_ORIGIN_PORT", default=0, convert=int, help="port (0: any free)")
    add_flag(
        parser, "--ready-file", env="WORLD_ORIGIN_READY_FILE", default=None, convert=Path,
        help="write a JSON ready report here once listening",
    )  # fmt: skip
    add_logging_flags(parser, env_prefix="WORLD_ORIGIN")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    ready = ready_file_reporter(SERVICE_NAME, args.ready_file)
    try:
        serve_until_signalled(lambda stop: run(args.host, args.port, ready=ready, stop=stop))
    except OSError as exc:
        fail(PROG, f"cannot listen on {args.host}:{args.port}: {exc}", code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
