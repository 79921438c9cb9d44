"""Outbound HTTP for components: ``wasi:http/outgoing-handler`` and the resources it uses.

A component calls out the WASI 0.2 way (Spin SDK's ``http.send``, a JavaScript ``fetch``):
it builds an ``outgoing-request`` (method, scheme, authority, ``path-with-query``, headers,
an optional ``outgoing-body`` it writes and finishes), hands it to
``outgoing-handler.handle`` with optional ``request-options``, and waits on the
``future-incoming-response`` for an ``incoming-response`` (status, headers, an
``incoming-body`` stream). Modelled on wasmtime's ``wasmtime-wasi-http`` crate: a scheme
left unset is HTTPS, a request without authority is ``HTTP-request-URI-invalid``.

The rules are edge_http's, by the same code (``outbound.OutboundClient``): the module's
``allowed_outbound_hosts`` judged by ``outbound_policy`` before anything leaves the host,
the run's request and byte limits, each request's timeout bounded by the run's deadline,
redirects followed and judged the same way, the fetch done by the run's
``CURRENT_FETCHER`` (the node's: through its cache, traced). A refusal is an
``error-code`` the guest gets back (``HTTP-request-denied``, ...), not a trap: a URL the
grant does not allow from ``handle`` itself, as Spin does, a limit or a failed fetch from
the future. Without a grant ``handle`` refuses with ``OUTBOUND_REFUSAL`` (the request fails).

The fetch blocks the guest's thread, as edge_http's does: the request is sent when the
guest first asks the future for its answer (``get``), once its body, if it has one, is
finished; until then the future's pollable is not ready.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from wasmtime.component import ResourceAny, ResourceHost, Variant

from wasm_host.component_http import (
    METHODS,
    T_FIELDS,
    T_FUTURE_INCOMING_RESPONSE,
    T_INCOMING_BODY,
    T_INCOMING_RESPONSE,
    T_OUTGOING_BODY,
    T_OUTGOING_REQUEST,
    T_REQUEST_OPTIONS,
    Fields,
    IncomingBody,
    OutgoingBody,
    exchange,
)
from wasm_host.component_wasi import (
    OK,
    T_POLLABLE,
    Definer,
    HostRefusalError,
    Pollable,
    current,
    define_funcs,
)
from wasm_host.outbound import OutboundError, OutboundResponse, guest_headers, method_problem

OUTGOING_HANDLER = "wasi:http/outgoing-handler"
OUTBOUND_REFUSAL = (
    "outgoing HTTP (wasi:http/outgoing-handler) is not allowed: the module's manifest grants "
    "no allowed_outbound_hosts"
)
ERR = Variant("err")
_SCHEMES = {"HTTP": "http", "HTTPS": "https"}
# The error-code case for each of outbound.ERRORS' reasons (those with a payload below).
_ERROR_CODES = {
    "invalid-url": "HTTP-request-URI-invalid",
    "not-allowed": "HTTP-request-denied",
    "self-not-origin": "HTTP-request-denied",
    "too-many-requests": "HTTP-request-denied",
    "blocked-address": "destination-IP-prohibited",
    "timeout": "connection-read-timeout",
    "too-many-redirects": "loop-detected",
    "invalid-request": "HTTP-protocol-error",
}


def error_code(error: OutboundError, *, request_side: bool = False) -> Variant:
    """The ``error-code`` a guest gets for ``error``: the closest case, else
    ``internal-error`` with the host's message (a failed fetch, no fetcher)."""
    if error.reason == "too-many-bytes":
        return Variant("HTTP-request-body-size" if request_side else "HTTP-response-body-size", None)
    case = _ERROR_CODES.get(error.reason)
    return Variant(case) if case is not None else Variant("internal-error", error.message)


class OutgoingRequest:
    def __init__(self, headers: Fields) -> None:
        self.headers = headers
        self.method = "GET"
        self.scheme: Variant | None = None
        self.authority: str | None = None
        self.path_with_query: str | None = None
        self.body: RequestBody | None = None
        self.body_rep = 0  # the body's handle, to notice a body dropped unfinished


class RequestBody(OutgoingBody):
    """A request body: kept up to one byte past the run's byte budget, then closed (the
    send is then refused as ``too-many-bytes``, by the shared accounting)."""

    def accept(self, data: bytes) -> None:
        room = self.limit + 1 - self.size
        kept = data[: max(room, 0)]
        self.size += len(kept)
        self.chunks.append(kept)
        if self.size > self.limit and self.stream is not None:
            self.stream.closed = True


class RequestOptions:
    def __init__(self) -> None:
        self.timeouts: dict[str, int | None] = dict.fromkeys(
            ("connect-timeout", "first-byte-timeout", "between-bytes-timeout")
        )

    def timeout_s(self) -> float | None:
        """Connect and first byte together: the guest's wait for an answer, if it set one."""
        parts = [self.timeouts[k] for k in ("connect-timeout", "first-byte-timeout")]
        given = [p for p in parts if p is not None]
        return sum(given) / 1e9 if given else None


class FutureResponse:
    """A sent request: fetched on the first ``get`` (once its body is finished)."""

    def __init__(self, request: OutgoingRequest, url: str, options: RequestOptions | None) -> None:
        self.request = request
        self.url = url
        self.options = options
        self.taken = False

    def sendable(self) -> bool:
        body = self.request.body
        return body is None or body.finished or self.body_dropped()

    def body_dropped(self) -> bool:
        body = self.request.body
        return body is not None and not body.finished and self.request.body_rep not in current().table


class FuturePollable(Pollable):
    """Ready once the future's request can be sent (its answer is then one ``get`` away)."""

    def __init__(self, future: FutureResponse) -> None:
        super().__init__()
        self.future = future

    def ready_time(self) -> float:
        return 0.0 if self.future.sendable() else math.inf


class IncomingResponse:
    def __init__(self, response: OutboundResponse) -> None:
        self.response = response
        self.consumed = False


# outgoing-request, request-options ----------------------------------------------------------


def _request_new(store: Any, headers: ResourceAny) -> ResourceHost:
    fields: Fields = current().take(store, headers)
    return current().own(OutgoingRequest(fields), T_OUTGOING_REQUEST)


def _request(store: Any, this: ResourceAny) -> OutgoingRequest:
    request: OutgoingRequest = current().get(store, this)
    return request


def _method(store: Any, this: ResourceAny) -> Variant:
    method = _request(store, this).method
    return Variant(method.lower()) if method in METHODS else Variant("other", method)


def _set_method(store: Any, this: ResourceAny, method: Variant) -> Variant:
    name = method.payload if method.tag == "other" else method.tag.upper()
    if not isinstance(name, str) or method_problem(name) is not None:
        return ERR
    _request(store, this).method = name
    return OK


def _path_with_query(store: Any, this: ResourceAny) -> str | None:
    return _request(store, this).path_with_query


def _set_path_with_query(store: Any, this: ResourceAny, value: str | None) -> Variant:
    if value is not None and not (value.startswith("/") and value.isprintable() and " " not in value):
        return ERR
    _request(store, this).path_with_query = value
    return OK


def _scheme(store: Any, this: ResourceAny) -> Variant | None:
    return _request(store, this).scheme


def _set_scheme(store: Any, this: ResourceAny, scheme: Variant | None) -> Variant:
    _request(store, this).scheme = scheme
    return OK


def _authority(store: Any, this: ResourceAny) -> str | None:
    return _request(store, this).authority


def _set_authority(store: Any, this: ResourceAny, authority: str | None) -> Variant:
    if authority is not None and (not authority.isprintable() or any(c in authority for c in "/?#@ ")):
        return ERR
    _request(store, this).authority = authority
    return OK


def _headers(store: Any, this: ResourceAny) -> ResourceHost:
    headers = _request(store, this).headers
    # A child of the request: the same entries, shared, so later changes are seen.
    return current().own(Fields(headers.entries, mutable=headers.mutable), T_FIELDS)


def _body(store: Any, this: ResourceAny) -> ResourceHost | None:
    request = _request(store, this)
    if request.body is not None:
        return None
    state = exchange()
    limit = state.outbound[0].grant.limits.max_bytes if state.outbound is not None else state.max_output_bytes
    request.body = RequestBody(limit)
    handle = state.own(request.body, T_OUTGOING_BODY)
    request.body_rep = handle.rep
    return handle


def _options_new(store: Any) -> ResourceHost:
    return current().own(RequestOptions(), T_REQUEST_OPTIONS)


def _timeout_funcs(name: str) -> dict[str, Callable[..., Any]]:
    def get(store: Any, this: ResourceAny) -> int | None:
        options: RequestOptions = current().get(store, this)
        return options.timeouts[name]

    def set_(store: Any, this: ResourceAny, nanos: int | None) -> Variant:
        options: RequestOptions = current().get(store, this)
        options.timeouts[name] = nanos
        return OK

    return {f"[method]request-options.{name}": get, f"[method]request-options.set-{name}": set_}


# outgoing-handler, future-incoming-response, incoming-response ---------------------------------


def _target(request: OutgoingRequest) -> str | Variant:
    """The URL ``request`` names, or the error-code for a request that cannot be sent."""
    if method_problem(request.method) is not None:
        return Variant("HTTP-request-method-invalid")
    scheme = _SCHEMES.get(request.scheme.tag if request.scheme is not None else "HTTPS")
    if scheme is None:
        return Variant("HTTP-protocol-error")  # neither http nor https
    if not request.authority:
        return Variant("HTTP-request-URI-invalid")
    return f"{scheme}://{request.authority}{request.path_with_query or '/'}"


def _handle(store: Any, request: ResourceAny, options: ResourceAny | None) -> ResourceHost | Variant:
    state = exchange()
    if state.outbound is None:
        raise HostRefusalError(OUTBOUND_REFUSAL)
    client, run = state.outbound
    outgoing: OutgoingRequest = state.take(store, request)
    opts: RequestOptions | None = state.take(store, options) if options is not None else None
    url = _target(outgoing)
    if isinstance(url, Variant):
        return url
    try:
        client.check(run, url)  # judged now, before the guest writes a body; again when sent
    except OutboundError as exc:
        return error_code(exc)
    return state.own(FutureResponse(outgoing, url, opts), T_FUTURE_INCOMING_RESPONSE)


def _send(future: FutureResponse) -> ResourceHost | Variant:
    """Fetch the future's request: an ``incoming-response`` handle, or an error-code."""
    state = exchange()
    assert state.outbound is not None  # a future exists only where handle accepted
    client, run = state.outbound
    request = future.request
    if future.body_dropped():
        return Variant("internal-error", "the request body was dropped without outgoing-body.finish")
    body = b"".join(request.body.chunks) if request.body is not None else b""
    try:
        headers = guest_headers((name, value.decode("latin-1")) for name, value in request.headers.entries)
    except ValueError as exc:
        return Variant("internal-error", str(exc))
    request_side = run.bytes_used + len(body) > client.grant.limits.max_bytes
    timeout_s = future.options.timeout_s() if future.options is not None else None
    try:
        response = client.send(run, request.method, future.url, headers, body, timeout_s=timeout_s)
    except OutboundError as exc:
        return error_code(exc, request_side=request_side)
    return state.own(IncomingResponse(response), T_INCOMING_RESPONSE)


def _future_subscribe(store: Any, this: ResourceAny) -> ResourceHost:
    future: FutureResponse = current().get(store, this)
    return current().own(FuturePollable(future), T_POLLABLE)


def _future_get(store: Any, this: ResourceAny) -> Variant:
    # option<result<result<incoming-response, error-code>>>: the option is tagged (see the
    # value conventions in component_wasi), both results are not.
    future: FutureResponse = current().get(store, this)
    if future.taken:
        return Variant("some", None)  # some(err): the answer was already taken
    if not future.sendable():
        return Variant("none")
    future.taken = True
    return Variant("some", _send(future))


def _response(store: Any, this: ResourceAny) -> IncomingResponse:
    response: IncomingResponse = current().get(store, this)
    return response


def _status(store: Any, this: ResourceAny) -> int:
    return _response(store, this).response.status


def _response_headers(store: Any, this: ResourceAny) -> ResourceHost:
    entries = [
        (name, value.encode("latin-1", "replace")) for name, value in _response(store, this).response.headers
    ]
    return current().own(Fields(entries, mutable=False), T_FIELDS)


def _consume(store: Any, this: ResourceAny) -> ResourceHost | None:
    incoming = _response(store, this)
    if incoming.consumed:
        return None
    incoming.consumed = True
    return current().own(IncomingBody(incoming.response.body), T_INCOMING_BODY)


TYPE_FUNCS: dict[str, Callable[..., Any]] = {
    "[constructor]outgoing-request": _request_new,
    "[method]outgoing-request.body": _body,
    "[method]outgoing-request.method": _method,
    "[method]outgoing-request.set-method": _set_method,
    "[method]outgoing-request.path-with-query": _path_with_query,
    "[method]outgoing-request.set-path-with-query": _set_path_with_query,
    "[method]outgoing-request.scheme": _scheme,
    "[method]outgoing-request.set-scheme": _set_scheme,
    "[method]outgoing-request.authority": _authority,
    "[method]outgoing-request.set-authority": _set_authority,
    "[method]outgoing-request.headers": _headers,
    "[constructor]request-options": _options_new,
    **_timeout_funcs("connect-timeout"),
    **_timeout_funcs("first-byte-timeout"),
    **_timeout_funcs("between-bytes-timeout"),
    "[method]future-incoming-response.subscribe": _future_subscribe,
    "[method]future-incoming-response.get": _future_get,
    "[method]incoming-response.status": _status,
    "[method]incoming-response.headers": _response_headers,
    "[method]incoming-response.consume": _consume,
}


def define_outgoing_handler(definer: Definer) -> None:
    """Define ``wasi:http/outgoing-handler`` (its resources are ``wasi:http/types``')."""
    with definer.interface(OUTGOING_HANDLER) as inst:
        define_funcs(inst, {"handle": _handle})
