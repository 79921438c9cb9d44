"""The reactor ABI's binary request/response encoding (docs/abi.md), as pure functions.

All integers are little-endian u32; strings are raw bytes (UTF-8 by convention), never
NUL-terminated. Request: a 32-byte fixed part ``version, method_len, path_len, query_len,
remote_addr_len, route_len, header_count, body_len``, then method, path, query, remote
address, matched route, ``header_count`` x (``name_len, value_len, name, value``), body.
Response: ``status, header_count, body_len``, the headers in the same form, then the body,
and nothing after it.
"""

from __future__ import annotations

import struct

from wasm_host.errors import InvalidReactorOutputError
from wasm_host.httpfields import (
    HOP_BY_HOP,
    MAX_RESPONSE_HEADERS,
    field_problem,
    has_control,
    is_token,
    status_problem,
)
from wasm_host.values import WasmRequest, WasmResponse

VERSION = 1
_REQUEST_HEAD = struct.Struct("<8I")
_RESPONSE_HEAD = struct.Struct("<3I")
_PAIR = struct.Struct("<2I")


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def encode_request(request: WasmRequest) -> bytes:
    """The request bytes the host writes into guest memory (header names lower-cased)."""
    method = _enc(request.method)
    path = _enc(request.path)
    query = _enc(request.query)
    remote = _enc(request.remote_addr)
    route = _enc(request.matched_route)
    parts = [b"", method, path, query, remote, route]
    pack = _PAIR.pack
    append = parts.append
    for name, value in request.headers:
        # _enc inlined: this loop runs for every header of every reactor request.
        raw_name = name.lower().encode("utf-8", "surrogateescape")
        raw_value = value.encode("utf-8", "surrogateescape")
        append(pack(len(raw_name), len(raw_value)))
        append(raw_name)
        append(raw_value)
    body = request.body
    append(body)
    parts[0] = _REQUEST_HEAD.pack(
        VERSION, len(method), len(path), len(query), len(remote), len(route), len(request.headers), len(body)
    )
    return b"".join(parts)


def decode_response(data: bytes) -> WasmResponse:
    """Parse the bytes a reactor handler returned, checking every length against the buffer."""
    size = len(data)
    if size < _RESPONSE_HEAD.size:
        raise InvalidReactorOutputError(f"response of {size} bytes is shorter than its 12-byte head")
    status, count, body_len = _RESPONSE_HEAD.unpack_from(data, 0)
    problem = status_problem(status)
    if problem:
        raise InvalidReactorOutputError(problem)
    if count > MAX_RESPONSE_HEADERS:
        raise InvalidReactorOutputError(f"{count} headers, more than {MAX_RESPONSE_HEADERS}")
    pos = _RESPONSE_HEAD.size
    headers: list[tuple[str, str]] = []
    unpack = _PAIR.unpack_from
    for index in range(count):
        if pos + 8 > size:
            raise InvalidReactorOutputError(f"header {index} runs past the end of the response")
        name_len, value_len = unpack(data, pos)
        pos += 8
        end = pos + name_len + value_len
        if end > size:
            raise InvalidReactorOutputError(f"header {index} runs past the end of the response")
        try:
            name = data[pos : pos + name_len].decode("ascii").lower()
            value = data[pos + name_len : end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidReactorOutputError(f"header {index} is not text: {exc.reason}") from exc
        pos = end
        if name in HOP_BY_HOP or not is_token(name) or has_control(value):
            raise InvalidReactorOutputError(field_problem(name, value) or f"bad header {name!r}")
        if name == "content-length":
            if value != str(body_len):
                raise InvalidReactorOutputError(f"content-length {value!r} but the body has {body_len} bytes")
            continue
        headers.append((name, value))
    if pos + body_len != size:
        raise InvalidReactorOutputError(
            f"body length {body_len} does not match the {size - pos} bytes left in the response"
        )
    return WasmResponse(status=status, headers=tuple(headers), body=data[pos:])


def encode_response(response: WasmResponse) -> bytes:
    """The guest side of the encoding, for tests and for Python reference handlers."""
    parts = [_RESPONSE_HEAD.pack(response.status, len(response.headers), len(response.body))]
    for name, value in response.headers:
        raw_name, raw_value = _enc(name), _enc(value)
        parts += [_PAIR.pack(len(raw_name), len(raw_value)), raw_name, raw_value]
    parts.append(response.body)
    return b"".join(parts)


def decode_request(data: bytes) -> WasmRequest:
    """The guest side of the encoding, for tests; lengths are trusted to be consistent."""
    version, *lengths = _REQUEST_HEAD.unpack_from(data, 0)
    if version != VERSION:
        raise ValueError(f"unknown request encoding version {version}")
    method_len, path_len, query_len, remote_len, route_len, count, body_len = lengths
    pos = _REQUEST_HEAD.size
    fields = []
    for length in (method_len, path_len, query_len, remote_len, route_len):
        fields.append(data[pos : pos + length].decode("utf-8", "surrogateescape"))
        pos += length
    headers = []
    for _ in range(count):
        name_len, value_len = _PAIR.unpack_from(data, pos)
        pos += 8
        name = data[pos : pos + name_len].decode("utf-8", "surrogateescape")
        value = data[pos + name_len : pos + name_len + value_len].decode("utf-8", "surrogateescape")
        headers.append((name, value))
        pos += name_len + value_len
    if pos + body_len != len(data):
        raise ValueError("request body length does not match the buffer")
    method, path, query, remote, route = fields
    return WasmRequest(
        method=method,
        path=path,
        query=query,
        remote_addr=remote,
        matched_route=route,
        headers=tuple(headers),
        body=data[pos:],
    )
