"""Fetching origin routes (CDN mode) over a keep-alive client pool.

Only hop-safe headers go to the origin and come back; the edge's own ``x-forwarded-*``
tell the origin who the client was. Bodies are read whole up to a cap, so a cacheable
answer can be stored; larger ones are refused with 502 rather than truncated.

An origin that sends more bytes than its ``Content-Length`` gets the client its first
``Content-Length`` bytes, as nginx, Varnish and ATS pass on: the message ends where its
framing says (RFC 9112 6.3), and what follows is not the next answer's concern. aiohttp's
llhttp parser instead fails the whole answer on the surplus, so origin connections parse
with aiohttp's pure-Python response parser (``origin_connector``); it costs a little CPU
on misses only, never on hits.
"""

from __future__ import annotations

import functools
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_parser import HttpResponseParserPy
from multidict import CIMultiDict

from edge_node.errors import OriginError
from edge_node.pipeline import Exchange
from wasm_host.values import WasmResponse

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class _LenientResponseHandler(ResponseHandler):
    """aiohttp's connection protocol, parsing answers with the pure-Python parser, which
    ends a message at its Content-Length and leaves any surplus unread."""

    def set_response_params(self, **params: Any) -> None:
        super().set_response_params(**params)
        self._parser = HttpResponseParserPy(
            self,
            self._loop,
            params.get("read_bufsize", 2**16),
            timer=params.get("timer"),
            payload_exception=aiohttp.ClientPayloadError,
            response_with_body=not params.get("skip_payload", False),
            read_until_eof=params.get("read_until_eof", False),
            auto_decompress=params.get("auto_decompress", True),
            max_line_size=params.get("max_line_size", 8190),
            max_field_size=params.get("max_field_size", 8190),
            max_headers=params.get("max_headers", 128),
        )


def origin_connector() -> aiohttp.TCPConnector:
    """A connection pool for origins whose connections use ``_LenientResponseHandler``."""
    connector = aiohttp.TCPConnector()
    # aiohttp builds each connection's protocol with this factory (no public hook for it);
    # tests/edge_node/test_cache_origin.py fails if a new aiohttp stops honouring it.
    connector._factory = functools.partial(_LenientResponseHandler, loop=connector._loop)  # type: ignore[assignment]
    return connector


class AiohttpOriginFetcher:
    """Fetches ``origin + path`` for origin routes; one shared session per node."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout_s: float, max_body_bytes: int) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_body_bytes = max_body_bytes

    async def fetch(self, exchange: Exchange, origin: str) -> WasmResponse:
        url = origin.rstrip("/") + exchange.path + (f"?{exchange.query}" if exchange.query else "")
        headers = CIMultiDict((k, v) for k, v in exchange.headers if k.lower() not in HOP_BY_HOP)
        if exchange.client is not None:
            headers["x-forwarded-for"] = exchange.client.address
        headers["x-forwarded-host"] = exchange.host
        if exchange.trace is not None:  # the origin continues our trace (W3C trace context)
            exchange.origin_span_id = exchange.trace.new_span_id()
            headers["traceparent"] = exchange.trace.traceparent(exchange.origin_span_id)
        try:
            # A cacheable HEAD goes upstream as a GET, so its answer can be stored.
            method = exchange.cache.upstream_method if exchange.cache is not None else exchange.method
            async with self._session.request(
                method,
                url,
                headers=headers,
                data=exchange.body or None,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                body = await response.content.read(self._max_body_bytes + 1)
                if len(body) > self._max_body_bytes:
                    raise OriginError(f"origin response exceeds {self._max_body_bytes} bytes", origin=origin)
                kept = tuple(
                    (k.lower(), v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP
                )
                return WasmResponse(status=response.status, headers=kept, body=body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OriginError(f"origin {origin} failed: {exc!r}", origin=origin) from exc
