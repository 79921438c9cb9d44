"""The admin endpoints' small HTTP layer: what an endpoint sees of a request, what it
answers, and which endpoint serves a path and method.

Admin requests are rare and tiny, so the body is read whole (up to ``MAX_BODY``) before
the endpoint runs, and endpoints are plain synchronous functions of in-memory state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from httpfront.flow import RawHeaders
from httpfront.messages import FrontRequest

ADMIN_PREFIXES = (b"/_router/", b"/metrics", b"/healthz")
JSON = b"application/json"
PUBLIC_PATHS = ("/healthz",)
ADMIN_ELSEWHERE = "the router's admin endpoints are served on its --admin-port, not here"
MAX_BODY = 64 * 1024  # admin bodies are a few fields of JSON


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminCall:
    """What an admin endpoint sees of a request: the head's few useful parts and the body."""

    method: str
    path: str
    query: str
    peer: str
    authorization: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class AdminAnswer:
    """A small, whole answer."""

    status: int
    content_type: bytes
    body: bytes
    headers: RawHeaders | None = None

    @classmethod
    def json(cls, document: Any, status: int = 200, headers: RawHeaders | None = None) -> AdminAnswer:
        return cls(status, JSON, json.dumps(document).encode(), headers)

    @classmethod
    def error(cls, status: int, kind: str, message: str, headers: RawHeaders | None = None) -> AdminAnswer:
        return cls.json({"error": kind, "message": message}, status, headers)

    def head(self) -> RawHeaders:
        return [(b"content-type", self.content_type), *(self.headers or ())]


# Admin answers are computed from in-memory state: no I/O, so no awaiting.
AdminEndpoint = Callable[[AdminCall], AdminAnswer]
# The endpoints of one path, by method (GET serves HEAD too).
AdminMethods = Mapping[str, AdminEndpoint]


class AdminRoutes:
    """Admin paths: exact ones, and prefixes (ending in ``/``) whose rest is a parameter."""

    def __init__(self, exact: Mapping[str, AdminMethods], prefixes: Mapping[str, AdminMethods]) -> None:
        self._exact = dict(exact)
        self._prefixes = tuple(prefixes.items())

    def get(self, path: str) -> AdminMethods | None:
        methods = self._exact.get(path)
        if methods is None:
            for prefix, candidate in self._prefixes:
                if path.startswith(prefix):
                    return candidate
        return methods


def public_routes(admin: AdminRoutes) -> AdminRoutes:
    """What the public port keeps when the admin endpoints have a port of their own: the
    health check load balancers probe, nothing that shows or changes the router's state."""
    return AdminRoutes({path: methods for path in PUBLIC_PATHS if (methods := admin.get(path))}, {})


async def answer_admin(methods: AdminMethods, request: FrontRequest) -> AdminAnswer:
    """The answer of the endpoint for ``request``'s method: 405 when there is none, 413
    for a body over ``MAX_BODY``."""
    endpoint = methods.get("GET" if request.method == "HEAD" else request.method)
    if endpoint is None:
        allowed = ", ".join(sorted({*methods, "HEAD"} if "GET" in methods else set(methods)))
        return AdminAnswer.error(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.path}: use {allowed}",
            [(b"allow", allowed.encode())],
        )
    body = bytearray()
    if request.body_exists:
        async for chunk in request.body():
            body += chunk
            if len(body) > MAX_BODY:
                return AdminAnswer.error(413, "body_too_large", f"an admin body is at most {MAX_BODY} bytes")
    call = AdminCall(
        method=request.method,
        path=request.path,
        query=request.query,
        peer=request.peer,
        authorization=request.header(b"authorization"),
        body=bytes(body),
    )
    return endpoint(call)
