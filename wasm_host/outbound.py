"""Outbound HTTP for handlers: what the ``edge_http`` host functions (``wasm_host.edge_http``)
and the server that embeds them share, both ABIs (docs/abi.md, "Outbound HTTP").

A module that imports ``edge_http`` is linked only when its manifest grants at least one
host (``OutboundGrant``); every other import outside WASI is still refused by the sandbox.
The guest sends a request (``send``, which writes the answer's handle, status, cache
outcome and body size, and the body's first bytes into a buffer the guest passes) and reads
the rest through the handle (``status``, ``headers_get``, ``header_get``, ``body_read`` in
chunks, ``close``); every function returns an error code (``ERRORS``) and ``error_message``
tells the guest why the last call failed. Each call is a trip from wasm into Python that
must take the GIL back from the busy event loop (measured: six calls per fetch cost half
the handler's requests/s), so a small answer takes one call: ``send`` alone.

Each URL is judged by ``outbound_policy.check_url`` before anything leaves the host, and
so is every redirect target (followed here, up to ``MAX_REDIRECTS``). Per invocation the
host counts requests and bytes against the module's ``OutboundLimits`` and gives each
request at most its per-request timeout, and never more than what is left of the run's
deadline.

``OutboundClient`` is that judging and counting, one module's, shared by the two ways a
guest calls out: the ``edge_http`` functions (``wasm_host.edge_http``) and a component's
``wasi:http/outgoing-handler`` (``wasm_host.component_outgoing``); ``OutboundRun`` is one
run's budget (its fetcher, deadline and counters).

The fetch itself belongs to the embedding server: a ``OutboundFetcher`` found in the
context variable ``CURRENT_FETCHER`` when the run starts (the edge node sets it per
request, so the fetcher knows the request's trace and app). Its ``fetch`` is called on the
thread running the guest and blocks it; a server runs such modules on a worker thread and
the fetch on its event loop (``wasm_host.executor`` never runs them inline).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from wasm_host.outbound_policy import (
    NO_ALLOWANCE,
    Allowed,
    HostGrant,
    NetworkAllowance,
    Refused,
    Target,
    check_url,
    parse_grants,
    redirect_method,
    redirect_target,
)

logger = logging.getLogger(__name__)

EDGE_HTTP_MODULE = "edge_http"
MAX_REDIRECTS = 5
MAX_KEPT_DECISIONS = 256  # per module
FLAG_BYPASS_CACHE = 1

# Error codes every edge_http function returns (handlers/sdk/edge_http.h mirrors them).
OK = 0
ERRORS = {
    "invalid-handle": 1,
    "memory-access": 2,
    "buffer-too-small": 3,
    "header-not-found": 4,
    "invalid-url": 5,
    "not-allowed": 6,
    "blocked-address": 7,
    "too-many-requests": 8,
    "too-many-bytes": 9,
    "timeout": 10,
    "failed": 11,
    "unavailable": 12,
    "invalid-request": 13,
    "too-many-redirects": 14,
    "self-not-origin": 15,
}

# The cache outcome ``send`` reports (edge_http_response.cache): 0 when the cache was not used.
CACHE_CODES = {"HIT": 1, "MISS": 2, "STALE": 3, "REVALIDATED": 4}

SIGNATURES: dict[str, int] = {  # name -> number of i32 parameters; every result is one i32
    "send": 12,
    "status": 2,
    "headers_get": 4,
    "header_get": 6,
    "body_read": 4,
    "close": 1,
    "error_message": 3,
}
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_METHOD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Never taken from the guest: the host frames the message and names the trace.
_HOST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "traceparent",
        "tracestate",
        "upgrade",
        "te",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundLimits:
    """Per invocation of one module (manifest keys ``outbound_requests``,
    ``outbound_bytes``, ``outbound_timeout``)."""

    max_requests: int = 10
    max_bytes: int = 4 * 1024 * 1024  # request and response bodies together
    request_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, got {self.max_requests}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {self.max_bytes}")
        if not 0 < self.request_timeout_s <= 3600:
            raise ValueError(f"request_timeout_s must be within (0, 3600], got {self.request_timeout_s}")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundGrant:
    """What a module may reach: its parsed ``allowed_outbound_hosts`` and its limits."""

    hosts: tuple[HostGrant, ...]
    limits: OutboundLimits = OutboundLimits()

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError("an outbound grant needs at least one allowed host")

    @classmethod
    def of(cls, hosts: Iterable[str], limits: OutboundLimits | None = None) -> OutboundGrant | None:
        """The grant for a manifest's hosts and limits; None when it grants no host."""
        parsed = parse_grants(hosts)
        return cls(hosts=parsed, limits=limits or OutboundLimits()) if parsed else None


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundRequest:
    """One request a guest sends, once the policy allowed it."""

    module: str
    method: str
    target: Target
    headers: tuple[tuple[str, str], ...]
    body: bytes
    bypass_cache: bool
    max_body_bytes: int  # what is left of the invocation's byte budget


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundResponse:
    status: int
    headers: tuple[tuple[str, str], ...]  # lower-case names
    body: bytes
    cache_status: str | None = None  # the node cache's x-cache value, when it answered


class OutboundError(Exception):
    """A fetch that failed: ``reason`` is one of ``ERRORS``' names, ``message`` for the guest."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason if reason in ERRORS else "failed"
        self.message = message


class OutboundFetcher(Protocol):
    """What the embedding server provides: the fetch, and a word when the host refuses."""

    @property
    def allowance(self) -> NetworkAllowance: ...

    def fetch(self, request: OutboundRequest, timeout_s: float) -> OutboundResponse:
        """Blocking, on the guest's thread; raises ``OutboundError``."""
        ...

    def refused(self, module: str, url: str, reason: str, message: str) -> None:
        """The host refused a request before fetching it (count it, log it, trace it)."""
        ...


# Set by the server around a run (and copied to the worker thread with the run's context).
CURRENT_FETCHER: contextvars.ContextVar[OutboundFetcher | None] = contextvars.ContextVar(
    "edge_http_fetcher", default=None
)


def parse_header_block(block: bytes) -> tuple[tuple[str, str], ...]:
    """``name: value\\n`` lines (``\\r\\n`` too) as header pairs; ValueError for a bad line.
    Headers the host sets itself (framing, ``host``, trace context) are dropped."""
    pairs: list[tuple[str, str]] = []
    for raw in block.decode("latin-1").replace("\r\n", "\n").split("\n"):
        if not raw:
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            raise ValueError(f"{raw!r} is not a 'name: value' header line")
        pairs.append((name.strip(), value))
    return guest_headers(pairs)


def method_problem(method: str) -> str | None:
    """Why ``method`` cannot be sent (an HTTP method is an upper-case token), or None."""
    if not method or not set(method) <= _METHOD_CHARS:
        return f"{method!r} is not an HTTP method (upper-case token)"
    return None


def guest_headers(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """A guest's request headers as the host sends them: names lower-cased, values
    stripped, the headers the host sets itself dropped; ValueError for a bad name or value."""
    headers: list[tuple[str, str]] = []
    for name, value in pairs:
        if not name or not set(name) <= _TOKEN:
            raise ValueError(f"{name!r}: {value!r} is not a 'name: value' header line")
        if any(ord(c) < 0x20 and c != "\t" for c in value):
            raise ValueError(f"header {name!r} has a control character in its value")
        if name.lower() not in _HOST_HEADERS:
            headers.append((name.lower(), value.strip()))
    return tuple(headers)


@dataclass(slots=True)
class OutboundRun:
    """One run's outbound budget: its fetcher, its deadline and what it has used so far."""

    fetcher: OutboundFetcher | None
    deadline: float  # time.monotonic() at which the run's own deadline passes
    requests: int = 0
    bytes_used: int = 0

    @classmethod
    def starting(cls, timeout_s: float) -> OutboundRun:
        """The budget of a run starting now: the context's fetcher, ``timeout_s`` from now."""
        return cls(fetcher=CURRENT_FETCHER.get(), deadline=time.monotonic() + timeout_s)


class OutboundClient:
    """One module's outbound requests under its grant: each URL (and redirect) judged by
    ``check_url``, each request counted against the run's budget, the fetch done by the
    run's fetcher. Refusals are logged and told to the fetcher; every failure is raised as
    an ``OutboundError`` whose reason is one of ``ERRORS``' names."""

    def __init__(self, grant: OutboundGrant, module_name: str) -> None:
        self.grant = grant
        self.module_name = module_name
        # check_url is pure and costs ~40 µs (URL parsing, address forms): a handler asks
        # for the same few URLs on every request, so decisions are kept, a bounded few.
        self._decisions: dict[tuple[str, NetworkAllowance], Allowed | Refused] = {}

    def _decide(self, url: str, allowance: NetworkAllowance) -> Allowed | Refused:
        key = (url, allowance)
        decision = self._decisions.get(key)
        if decision is None:
            if len(self._decisions) >= MAX_KEPT_DECISIONS:
                self._decisions.clear()
            decision = self._decisions[key] = check_url(url, self.grant.hosts, allowance)
        return decision

    def refuse(self, run: OutboundRun, url: str, reason: str, message: str) -> OutboundError:
        """Log and report a refusal; the error to raise."""
        logger.info(
            "module %s: outbound request to %s refused (%s): %s", self.module_name, url, reason, message
        )
        if run.fetcher is not None:
            run.fetcher.refused(self.module_name, url, reason, message)
        return OutboundError(reason, message)

    def check(self, run: OutboundRun, url: str) -> Target:
        """The target ``url`` names if the grant allows it; else the refusal, reported."""
        allowance = run.fetcher.allowance if run.fetcher is not None else NO_ALLOWANCE
        decision = self._decide(url, allowance)
        if isinstance(decision, Refused):
            raise self.refuse(run, url, decision.reason, decision.message)
        return decision.target

    def send(
        self,
        run: OutboundRun,
        method: str,
        url: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        *,
        bypass: bool = False,
        timeout_s: float | None = None,
    ) -> OutboundResponse:
        """Send the request and follow the redirects the policy allows: the final answer.
        ``timeout_s`` (the guest's own) may shorten each request's timeout, never lengthen it."""
        limits = self.grant.limits
        for _ in range(MAX_REDIRECTS + 1):
            target = self.check(run, url)
            fetcher = run.fetcher
            if fetcher is None:
                raise OutboundError("unavailable", "this host offers no outbound HTTP")
            if run.requests >= limits.max_requests:
                raise self.refuse(
                    run,
                    url,
                    "too-many-requests",
                    f"at most {limits.max_requests} outbound requests per invocation",
                )
            if run.bytes_used + len(body) > limits.max_bytes:
                raise self.refuse(
                    run,
                    url,
                    "too-many-bytes",
                    f"outbound bodies exceed {limits.max_bytes} bytes per invocation",
                )
            left = run.deadline - time.monotonic()
            if left <= 0:
                raise OutboundError("timeout", "the handler's deadline has passed")
            run.requests += 1
            run.bytes_used += len(body)
            request = OutboundRequest(
                module=self.module_name,
                method=method,
                target=target,
                headers=headers,
                body=body,
                bypass_cache=bypass,
                max_body_bytes=limits.max_bytes - run.bytes_used,
            )
            timeout = min(limits.request_timeout_s, left)
            response = fetcher.fetch(request, timeout if timeout_s is None else min(timeout, timeout_s))
            run.bytes_used += len(response.body)
            if run.bytes_used > limits.max_bytes:
                raise OutboundError(
                    "too-many-bytes", f"outbound bodies exceed {limits.max_bytes} bytes per invocation"
                )
            location = next((v for k, v in response.headers if k == "location"), None)
            followed = redirect_target(target, response.status, location)
            if followed is None:
                return response
            url, method = followed, redirect_method(method, response.status)
            if method == "GET":
                body = b""
        raise OutboundError("too-many-redirects", f"more than {MAX_REDIRECTS} redirects")
