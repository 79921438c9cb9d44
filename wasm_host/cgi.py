"""The CGI/1.1 side of the WAGI ABI as pure functions: request environment and response parser.

``cgi_environ`` builds the environment a WAGI command sees (RFC 3875 meta-variables plus the
WAGI/Spin ``X_*`` extras). ``parse_cgi_response`` turns what the command printed into a
``WasmResponse`` or raises ``InvalidCgiOutputError`` saying exactly what is wrong.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

from wasm_host.errors import InvalidCgiOutputError
from wasm_host.httpfields import HOP_BY_HOP, MAX_RESPONSE_HEADERS, field_problem, is_token, status_problem
from wasm_host.values import WasmRequest, WasmResponse

# Names the host sets for every request; a manifest may not grant a variable with one of them.
RESERVED_ENV = frozenset(
    {
        "AUTH_TYPE",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "GATEWAY_INTERFACE",
        "PATH_INFO",
        "PATH_TRANSLATED",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_USER",
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "X_FULL_URL",
        "X_MATCHED_ROUTE",
        "X_RAW_PATH_INFO",
    }
)
SERVER_SOFTWARE = "edgecdn-wasm-host/1"

_FIXED_NAMES = (b"GATEWAY_INTERFACE", b"SERVER_PROTOCOL", b"SERVER_SOFTWARE")
_FIXED_VALUES = (b"CGI/1.1", b"HTTP/1.1", SERVER_SOFTWARE.encode())
_REQUEST_NAMES = (
    b"REQUEST_METHOD",
    b"SCRIPT_NAME",
    b"PATH_INFO",
    b"X_RAW_PATH_INFO",
    b"QUERY_STRING",
    b"SERVER_NAME",
    b"SERVER_PORT",
    b"REMOTE_ADDR",
    b"X_MATCHED_ROUTE",
    b"X_FULL_URL",
    b"CONTENT_LENGTH",
)


def is_reserved_env(name: str) -> bool:
    """True for names the host owns: the CGI meta-variables and every ``HTTP_*``."""
    return name in RESERVED_ENV or name.startswith("HTTP_")


def script_name(matched_route: str) -> str:
    """The route's fixed part: "/api/..." -> "/api", an exact route stays itself."""
    if matched_route.endswith("/..."):
        return matched_route[: -len("/...")]
    return matched_route


@functools.lru_cache(maxsize=4096)
def _header_env_name(name: str) -> bytes | None:
    """``cf-ipcountry`` -> ``HTTP_CF_IPCOUNTRY``; None for headers that never become variables.

    Names containing "_" are dropped, as nginx does by default: otherwise a client could send
    ``cf_ipcountry`` and land on the same variable as the trusted ``cf-ipcountry`` header the
    node strips and sets. Content-Type and Content-Length have their own CGI variables, and
    ``HTTP_PROXY`` would invite httpoxy.
    """
    lower = name.lower()
    if "_" in name or not name or lower in ("content-type", "content-length", "proxy"):
        return None
    return ("HTTP_" + lower.upper().replace("-", "_")).encode("ascii", "replace")


def _enc(text: str) -> bytes:
    # Header text reaches us decoded with surrogateescape by aiohttp; this restores its bytes.
    return text.encode("utf-8", "surrogateescape")


def cgi_environ_bytes(
    request: WasmRequest, granted: Sequence[tuple[bytes, bytes]] = ()
) -> tuple[list[bytes], list[bytes]]:
    """The environment of a WAGI command serving ``request`` as parallel name/value lists.

    Granted variables come first; the host's CGI variables follow (the manifest cannot grant
    a reserved name, so nothing collides). Repeated headers are joined with ", " (``cookie``
    with "; ") as RFC 3875 says. Values holding NUL cannot be C strings and are dropped.
    """
    base = script_name(request.matched_route)
    path = request.path
    path_info = path[len(base) :] if base and path.startswith(base) else path
    names = [name for name, _ in granted]
    names.extend(_FIXED_NAMES)
    values = [value for _, value in granted]
    values.extend(_FIXED_VALUES)
    path_info_b = _enc(path_info)
    names.extend(_REQUEST_NAMES)
    values.extend(
        (
            _enc(request.method),
            _enc(base),
            path_info_b,
            path_info_b,
            _enc(request.query),
            _enc(request.server_name),
            b"%d" % request.server_port,
            _enc(request.remote_addr),
            _enc(request.matched_route),
            _enc(request.full_url),
            b"%d" % len(request.body),
        )
    )
    seen: dict[bytes, int] = {}
    for header, value in request.headers:
        key = _header_env_name(header)
        if key is None:
            if header.lower() == "content-type" and b"CONTENT_TYPE" not in seen:
                key = b"CONTENT_TYPE"
            else:
                continue
        raw = _enc(value)
        index = seen.get(key)
        if index is None:
            seen[key] = len(names)
            names.append(key)
            values.append(raw)
        else:
            values[index] += b"; " if key == b"HTTP_COOKIE" else b", "
            values[index] += raw
    if b"\x00" in b"".join(values):  # one scan for the rare case, not one per value
        # Only a request field can hold NUL here; an empty value keeps the variable honest.
        values = [b"" if b"\x00" in value else value for value in values]
    return names, values


def cgi_environ_block(request: WasmRequest, granted: Sequence[tuple[bytes, bytes]] = ()) -> tuple[bytes, int]:
    """``cgi_environ_bytes`` as one ``NAME=value\0`` block and its count (for wasi_cgi.c)."""
    names, values = cgi_environ_bytes(request, granted)
    block = b"".join([name + b"=" + value + b"\0" for name, value in zip(names, values, strict=True)])
    return block, len(names)


def cgi_environ(request: WasmRequest, granted: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``cgi_environ_bytes`` decoded to text: the readable form for tests and logs."""
    pairs = tuple((_enc(k), _enc(v)) for k, v in (granted or {}).items())
    names, values = cgi_environ_bytes(request, pairs)
    return [
        (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
        for n, v in zip(names, values, strict=True)
    ]


# The header block ends at the first empty line; each line ends in LF or CRLF.
_HEAD_END = re.compile(rb"\n\r?\n")


_BAD_HEAD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _control_reason(head: str) -> str:
    for line in head.split("\n"):
        name, _, value = line.removesuffix("\r").partition(":")
        problem = field_problem(name.lower(), value.strip(" \t"))
        if problem:
            return problem
    return "a header line has a stray carriage return"


def _parse_status(value: str) -> int:
    code = value.split(" ", 1)[0]
    if len(code) != 3 or not code.isascii() or not code.isdigit():
        raise InvalidCgiOutputError(f"status {value!r} does not start with a 3-digit code")
    status = int(code)
    problem = status_problem(status)
    if problem:
        raise InvalidCgiOutputError(problem)
    return status


def _split(output: bytes) -> tuple[list[str], bytes]:
    if not output:
        raise InvalidCgiOutputError("the handler printed nothing")
    if output.startswith((b"\n", b"\r\n")):
        raise InvalidCgiOutputError("the output starts with an empty line: no CGI headers")
    end = _HEAD_END.search(output)
    if end is None:
        raise InvalidCgiOutputError("no empty line ends the CGI headers")
    try:
        # Keep the last line's LF so that its CR (in CRLF) is not mistaken for a stray one.
        head = output[: end.start() + 1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidCgiOutputError(f"CGI headers are not UTF-8: {exc.reason}") from exc
    # One scan of the whole block for control characters, instead of one per value.
    if _BAD_HEAD.search(head.replace("\r\n", "\n")) is not None:
        raise InvalidCgiOutputError(_control_reason(head))
    lines = head[:-1].split("\n")
    if len(lines) > MAX_RESPONSE_HEADERS:
        raise InvalidCgiOutputError(f"more than {MAX_RESPONSE_HEADERS} header lines")
    return lines, output[end.end() :]


def parse_cgi_response(output: bytes) -> WasmResponse:
    """Parse a CGI/1.1 response (RFC 3875 section 6): header lines, an empty line, the body.

    ``status: 404 Not Found`` sets the status; ``location`` without a status means 302; with
    neither, 200. At least one of content-type, status or location is required. A
    content-length header must match the body and is dropped (the server frames the body).
    """
    lines, body = _split(output)
    status: int | None = None
    location = content_type = False
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, colon, value = line.removesuffix("\r").partition(":")
        if not colon or not name:
            raise InvalidCgiOutputError(f"header line {line[:60]!r} is not 'name: value'")
        name = name.lower()
        value = value.strip(" \t")
        if name in HOP_BY_HOP or not is_token(name):
            raise InvalidCgiOutputError(field_problem(name, value) or f"bad header {name!r}")
        if name == "status":
            if status is not None:
                raise InvalidCgiOutputError("more than one status header")
            status = _parse_status(value)
            continue
        if name == "content-length":
            if value != str(len(body)):
                raise InvalidCgiOutputError(f"content-length {value!r} but the body has {len(body)} bytes")
            continue
        if name == "content-type" or name == "location":  # noqa: PLR1714
            if (location if name == "location" else content_type) or not value:
                raise InvalidCgiOutputError(f"{name} is empty or given more than once")
            location = location or name == "location"
            content_type = content_type or name == "content-type"
        headers.append((name, value))
    if status is None and not location and not content_type:
        raise InvalidCgiOutputError("no content-type, status or location header")
    if status is None:
        status = 302 if location else 200
    return WasmResponse(status=status, headers=tuple(headers), body=body)
