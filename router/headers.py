"""What the router does to headers, as pure code: what it forwards to an edge node and what
it drops, the few request headers it reads itself, and the headers it adds.

Edge nodes trust the router (``--trusted-proxy``), so the router must never pass on what
a client claims about itself: geo and edge headers and forwarding chains from an
untrusted client are dropped here, and the forwarding chain is rebuilt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from geo.forwarding import FORWARDING_HEADERS, RESERVED_HEADER_PREFIXES, RESERVED_HEADERS
from httpfront.flow import RawHeaders
from httpfront.messages import FrontRequest
from router.errors import RouterError
from router.policy import Candidate

# Hop-by-hop headers (RFC 9110 7.6.1) are for one connection, never forwarded; nor is
# Expect (the router answers 100-continue itself) or the router's own pin header.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
     b"proxy-authenticate", b"proxy-authorization"}
)  # fmt: skip
PIN_HEADER = "x-edge-pin"
PIN_HEADER_BYTES = PIN_HEADER.encode()
ROUTE_HEADER = "x-edge-route"
ROUTE_HEADER_BYTES = ROUTE_HEADER.encode()
# Names the router's own error answer, its log line and its trace (router.failures); an
# edge node's error answer passes through with the node's own.
REQUEST_ID_HEADER_BYTES = b"x-request-id"
FACT_HEADERS = frozenset({b"x-forwarded-for", b"forwarded", PIN_HEADER_BYTES, b"traceparent", b"tracestate"})
NOT_FORWARDED = HOP_BY_HOP | {b"expect", PIN_HEADER.encode()}
FORWARDING = frozenset(name.encode() for name in FORWARDING_HEADERS)
RESERVED = frozenset(name.encode() for name in RESERVED_HEADERS)
RESERVED_PREFIXES = tuple(prefix.encode() for prefix in RESERVED_HEADER_PREFIXES)
TRACE_CONTEXT = frozenset({b"traceparent", b"tracestate"})
# The front end frames what it sends (content-length or chunked): the node's framing stays behind.
RESPONSE_SKIP = HOP_BY_HOP | {b"content-length"}


def route_header(chosen: Candidate) -> str:
    rtt = "" if chosen.rtt_ms is None else f"{chosen.rtt_ms:.1f}"
    return f"region={chosen.node.region}; node={chosen.node.node_id}; reason={chosen.reason}; rtt_ms={rtt}"


def error_answer(error: RouterError, chosen: Candidate | None, request_id: str) -> tuple[RawHeaders, bytes]:
    """The headers and JSON body of the router's own error answer (with the route, if any):
    what ``error.client_json`` lets the client see, under ``request_id``."""
    headers = [(b"content-type", b"application/json"), (REQUEST_ID_HEADER_BYTES, request_id.encode())]
    if chosen is not None:
        headers.append((ROUTE_HEADER_BYTES, route_header(chosen).encode()))
    return headers, json.dumps(error.client_json(request_id)).encode()


def forward_headers(request: FrontRequest, *, trusted_peer: bool, replace_trace_context: bool) -> RawHeaders:
    """The request's headers for the edge node: hop-by-hop dropped, forwarding chain extended."""
    outgoing: RawHeaders = []
    chain: list[bytes] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower in NOT_FORWARDED or (replace_trace_context and lower in TRACE_CONTEXT):
            continue
        if lower in FORWARDING:
            if trusted_peer and lower == b"x-forwarded-for":
                chain.append(value)
            continue  # rebuilt below
        if not trusted_peer and (lower in RESERVED or lower.startswith(RESERVED_PREFIXES)):
            continue  # a client's own geo or edge claims are never passed on
        outgoing.append((name, value))
    chain.append(request.peer.encode())
    outgoing.append((b"x-forwarded-for", b", ".join(chain)))
    outgoing.append((b"x-forwarded-proto", b"http"))
    return outgoing


class RequestFacts:
    """The few request headers the router itself reads, found in one pass."""

    __slots__ = ("forwarded", "forwarded_for", "pin", "traceparent", "tracestate")

    def __init__(self, headers: RawHeaders) -> None:
        self.forwarded_for: str | None = None
        self.forwarded: str | None = None
        self.pin: str | None = None
        self.traceparent: str | None = None
        self.tracestate: str | None = None
        for name, value in headers:
            lower = name.lower()
            if lower in FACT_HEADERS:
                text = value.decode("latin-1")
                if lower == b"x-forwarded-for":
                    self.forwarded_for = f"{self.forwarded_for}, {text}" if self.forwarded_for else text
                elif lower == b"forwarded":
                    self.forwarded = f"{self.forwarded}, {text}" if self.forwarded else text
                elif lower == PIN_HEADER_BYTES:
                    self.pin = text.strip() or None
                elif lower == b"traceparent":
                    self.traceparent = text
                else:
                    self.tracestate = text


def describe_candidates(candidates: Iterable[Candidate]) -> list[dict[str, object]]:
    return [
        {
            "node_id": c.node.node_id,
            "region": c.node.region,
            "url": c.node.url,
            "reason": c.reason,
            "rtt_ms": None if c.rtt_ms is None else round(c.rtt_ms, 1),
        }
        for c in candidates
    ]
