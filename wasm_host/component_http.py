"""The host side of ``wasi:http/types@0.2.0`` for components exporting ``incoming-handler``.

A Spin (or ``wasmtime serve``) HTTP component gets the request as an ``incoming-request``
resource and answers through a ``response-outparam``: it builds an ``outgoing-response``
(status, ``fields``), sets it, and writes the body into the ``output-stream`` of its
``outgoing-body``. These resources live in the request's ``ComponentState`` table (see
``component_wasi``), modelled on wasmtime's ``wasmtime-wasi-http`` crate (child
``fields`` of a request or a sent response are immutable, a body is consumed once).
The resources of outbound HTTP (``outgoing-request``, ``future-incoming-response``,
``incoming-response``, ...) and ``wasi:http/outgoing-handler`` are ``component_outgoing``'s;
``incoming-body`` and ``outgoing-body`` serve both directions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasmtime.component import ResourceAny, ResourceHost, Variant

from wasm_host.component_wasi import (
    OK,
    T_INPUT,
    T_OUTPUT,
    T_POLLABLE,
    ComponentState,
    Definer,
    HostRefusalError,
    InputStream,
    OutputStream,
    Pollable,
    current,
    define_funcs,
    define_resource,
)
from wasm_host.errors import OutputTooLargeError
from wasm_host.outbound import OutboundClient, OutboundRun
from wasm_host.values import WasmRequest

HTTP_TYPES = "wasi:http/types"
INCOMING_HANDLER = "wasi:http/incoming-handler@0.2.x"

(
    T_FIELDS,
    T_INCOMING_REQUEST,
    T_OUTGOING_REQUEST,
    T_REQUEST_OPTIONS,
    T_RESPONSE_OUTPARAM,
    T_INCOMING_BODY,
    T_FUTURE_TRAILERS,
    T_OUTGOING_RESPONSE,
    T_OUTGOING_BODY,
    T_FUTURE_INCOMING_RESPONSE,
    T_INCOMING_RESPONSE,
) = range(101, 112)

METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}


class Fields:
    """A header map: ordered (name, value) pairs, names compared in lower case."""

    def __init__(self, entries: list[tuple[str, bytes]], *, mutable: bool = True) -> None:
        self.entries = entries
        self.mutable = mutable


class IncomingRequest:
    def __init__(self, request: WasmRequest) -> None:
        self.request = request
        self.consumed = False


class IncomingBody:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.streamed = False


class OutgoingResponse:
    def __init__(self, headers: Fields) -> None:
        self.status = 200
        self.headers = headers
        self.body: OutgoingBody | None = None


class OutgoingBody:
    """The response body: everything the guest writes, under the output limit."""

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.stream: OutputStream | None = None
        self.finished = False

    def accept(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise OutputTooLargeError(self.limit, self.size)
        self.chunks.append(data)


class ResponseOutparam:
    """Where the guest's answer lands; ``HttpExchange`` reads it after ``handle`` returns."""

    def __init__(self) -> None:
        self.response: OutgoingResponse | None = None
        self.error: str | None = None
        self.set = False


class HttpExchange(ComponentState):
    """One request's state: the generic table, the HTTP outcome, and (with a grant) the
    module's outbound client and this run's outbound budget."""

    def __init__(
        self,
        env: dict[str, str],
        deadline: float,
        max_output_bytes: int,
        outbound: tuple[OutboundClient, OutboundRun] | None = None,
    ) -> None:
        super().__init__(env, deadline)
        self.max_output_bytes = max_output_bytes
        self.outparam = ResponseOutparam()
        self.outbound = outbound


def exchange() -> HttpExchange:
    """The running request's state."""
    state = current()
    assert isinstance(state, HttpExchange)
    return state


# fields ----------------------------------------------------------------------------------

_HEADER_ERRORS = ("invalid-syntax", "forbidden", "immutable")


def _mutable(store: Any, this: ResourceAny) -> Fields | Variant:
    fields: Fields = current().get(store, this)
    return fields if fields.mutable else Variant("immutable")


def _valid(name: str) -> bool:
    return bool(name) and all(33 <= ord(c) < 127 and c not in '"(),/:;<=>?@[\\]{}' for c in name)


def _fields_new(store: Any) -> ResourceHost:
    return current().own(Fields([]), T_FIELDS)


def _fields_from_list(store: Any, entries: list[tuple[str, bytes]]) -> ResourceHost | Variant:
    if not all(_valid(name) for name, _ in entries):
        return Variant("invalid-syntax")
    return current().own(Fields(list(entries)), T_FIELDS)


def _fields_get(store: Any, this: ResourceAny, name: str) -> list[bytes]:
    fields: Fields = current().get(store, this)
    wanted = name.lower()
    return [value for key, value in fields.entries if key.lower() == wanted]


def _fields_has(store: Any, this: ResourceAny, name: str) -> bool:
    return bool(_fields_get(store, this, name))


def _fields_delete(store: Any, this: ResourceAny, name: str) -> Variant | None:
    fields = _mutable(store, this)
    if isinstance(fields, Variant):
        return fields
    wanted = name.lower()
    fields.entries = [(key, value) for key, value in fields.entries if key.lower() != wanted]
    return None


def _fields_set(store: Any, this: ResourceAny, name: str, values: list[bytes]) -> Variant | None:
    if not _valid(name):
        return Variant("invalid-syntax")
    problem = _fields_delete(store, this, name)
    if problem is not None:
        return problem
    fields: Fields = current().get(store, this)
    fields.entries.extend((name, value) for value in values)
    return None


def _fields_append(store: Any, this: ResourceAny, name: str, value: bytes) -> Variant | None:
    if not _valid(name):
        return Variant("invalid-syntax")
    fields = _mutable(store, this)
    if isinstance(fields, Variant):
        return fields
    fields.entries.append((name, value))
    return None


def _fields_entries(store: Any, this: ResourceAny) -> list[tuple[str, bytes]]:
    fields: Fields = current().get(store, this)
    return list(fields.entries)


def _fields_clone(store: Any, this: ResourceAny) -> ResourceHost:
    fields: Fields = current().get(store, this)
    return current().own(Fields(list(fields.entries)), T_FIELDS)


# incoming-request, incoming-body -------------------------------------------------------------


def _request(store: Any, this: ResourceAny) -> WasmRequest:
    incoming: IncomingRequest = current().get(store, this)
    return incoming.request


def _method(store: Any, this: ResourceAny) -> Variant:
    method = _request(store, this).method.upper()
    return Variant(method.lower()) if method in METHODS else Variant("other", method)


def _path_with_query(store: Any, this: ResourceAny) -> str:
    request = _request(store, this)
    return request.path + (f"?{request.query}" if request.query else "")


def _scheme(store: Any, this: ResourceAny) -> Variant:
    url = _request(store, this).full_url
    return Variant("HTTPS" if url.startswith("https:") else "HTTP")


def _authority(store: Any, this: ResourceAny) -> str:
    request = _request(store, this)
    host = request.header("host")
    return host or f"{request.server_name}:{request.server_port}"


def _request_headers(store: Any, this: ResourceAny) -> ResourceHost:
    headers = [(name.lower(), value.encode()) for name, value in _request(store, this).headers]
    return current().own(Fields(headers, mutable=False), T_FIELDS)


def _consume(store: Any, this: ResourceAny) -> ResourceHost | None:
    incoming: IncomingRequest = current().get(store, this)
    if incoming.consumed:
        return None
    incoming.consumed = True
    return current().own(IncomingBody(incoming.request.body), T_INCOMING_BODY)


def _body_stream(store: Any, this: ResourceAny) -> ResourceHost | None:
    body: IncomingBody = current().get(store, this)
    if body.streamed:
        return None
    body.streamed = True
    return current().own(InputStream(body.data), T_INPUT)


def _body_finish(store: Any, this: ResourceAny) -> ResourceHost:
    current().take(store, this)
    return current().own(Pollable(), T_FUTURE_TRAILERS)


def _trailers_subscribe(store: Any, this: ResourceAny) -> ResourceHost:
    current().get(store, this)  # ends the borrow (see component_wasi._subscribe)
    return current().own(Pollable(), T_POLLABLE)


def _trailers_get(store: Any, this: ResourceAny) -> Variant:
    # some(ok(ok(none))): the request had no trailers (see the module docstring on tags).
    return OK


# outgoing-response, outgoing-body, response-outparam -----------------------------------------


def _response_new(store: Any, headers: ResourceAny) -> ResourceHost:
    fields: Fields = current().take(store, headers)
    return current().own(OutgoingResponse(fields), T_OUTGOING_RESPONSE)


def _status_code(store: Any, this: ResourceAny) -> int:
    response: OutgoingResponse = current().get(store, this)
    return response.status


def _set_status_code(store: Any, this: ResourceAny, status: int) -> Variant:
    response: OutgoingResponse = current().get(store, this)
    if not 100 <= status <= 999:
        return Variant("err")
    response.status = status
    return OK


def _response_headers(store: Any, this: ResourceAny) -> ResourceHost:
    response: OutgoingResponse = current().get(store, this)
    # A child of the response: the same entries, shared, so later changes are seen.
    child = Fields(response.headers.entries, mutable=response.headers.mutable)
    return current().own(child, T_FIELDS)


def _response_body(store: Any, this: ResourceAny) -> ResourceHost | None:
    response: OutgoingResponse = current().get(store, this)
    if response.body is not None:
        return None
    response.body = OutgoingBody(exchange().max_output_bytes)
    return current().own(response.body, T_OUTGOING_BODY)


def _body_write(store: Any, this: ResourceAny) -> ResourceHost | None:
    body: OutgoingBody = current().get(store, this)
    if body.stream is not None:
        return None
    body.stream = OutputStream(body.accept)
    return current().own(body.stream, T_OUTPUT)


def _outgoing_finish(store: Any, this: ResourceAny, trailers: ResourceAny | None) -> None:
    body: OutgoingBody = current().take(store, this)
    body.finished = True
    if body.stream is not None:
        body.stream.closed = True


def _outparam_set(store: Any, param: ResourceAny, response: ResourceAny | Variant) -> None:
    state = exchange()
    state.table.pop(param.to_host(store).rep, None)
    outparam = state.outparam
    if outparam.set:
        raise HostRefusalError("response-outparam.set called twice")
    outparam.set = True
    if isinstance(response, Variant):
        outparam.error = response.tag + (f" ({response.payload!r})" if response.payload is not None else "")
        return
    answer: OutgoingResponse = state.take(store, response)
    answer.headers.mutable = False
    outparam.response = answer


def _http_error_code(store: Any, err: ResourceAny) -> None:
    current().get(store, err)  # ends the borrow; our stream errors carry no HTTP error code


def define_http(definer: Definer, outgoing: dict[str, Callable[..., Any]]) -> None:
    """Define ``wasi:http/types``: its resources, our functions and ``outgoing``'s
    (``component_outgoing.TYPE_FUNCS``, the outbound side of the same interface)."""
    with definer.interface(HTTP_TYPES) as inst:
        for name, type_id in (
            ("fields", T_FIELDS),
            ("incoming-request", T_INCOMING_REQUEST),
            ("outgoing-request", T_OUTGOING_REQUEST),
            ("request-options", T_REQUEST_OPTIONS),
            ("response-outparam", T_RESPONSE_OUTPARAM),
            ("incoming-body", T_INCOMING_BODY),
            ("future-trailers", T_FUTURE_TRAILERS),
            ("outgoing-response", T_OUTGOING_RESPONSE),
            ("outgoing-body", T_OUTGOING_BODY),
            ("future-incoming-response", T_FUTURE_INCOMING_RESPONSE),
            ("incoming-response", T_INCOMING_RESPONSE),
        ):
            define_resource(inst, name, type_id)
        define_funcs(
            inst,
            {
                "[constructor]fields": _fields_new,
                "[static]fields.from-list": _fields_from_list,
                "[method]fields.get": _fields_get,
                "[method]fields.has": _fields_has,
                "[method]fields.set": _fields_set,
                "[method]fields.delete": _fields_delete,
                "[method]fields.append": _fields_append,
                "[method]fields.entries": _fields_entries,
                "[method]fields.clone": _fields_clone,
                "[method]incoming-request.method": _method,
                "[method]incoming-request.path-with-query": _path_with_query,
                "[method]incoming-request.scheme": _scheme,
                "[method]incoming-request.authority": _authority,
                "[method]incoming-request.headers": _request_headers,
                "[method]incoming-request.consume": _consume,
                "[method]incoming-body.stream": _body_stream,
                "[static]incoming-body.finish": _body_finish,
                "[method]future-trailers.subscribe": _trailers_subscribe,
                "[method]future-trailers.get": _trailers_get,
                "[constructor]outgoing-response": _response_new,
                "[method]outgoing-response.status-code": _status_code,
                "[method]outgoing-response.set-status-code": _set_status_code,
                "[method]outgoing-response.headers": _response_headers,
                "[method]outgoing-response.body": _response_body,
                "[method]outgoing-body.write": _body_write,
                "[static]outgoing-body.finish": _outgoing_finish,
                "[static]response-outparam.set": _outparam_set,
                "http-error-code": _http_error_code,
                **outgoing,
            },
        )


def new_request_resources(state: HttpExchange, request: WasmRequest) -> tuple[ResourceHost, ResourceHost]:
    """The ``incoming-request`` and ``response-outparam`` handles ``handle`` is called with."""
    return (
        state.own(IncomingRequest(request), T_INCOMING_REQUEST),
        state.own(state.outparam, T_RESPONSE_OUTPARAM),
    )
