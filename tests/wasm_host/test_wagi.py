"""The WAGI ABI end to end with WAT probes: environment, stdin, exit codes and response parsing."""

from __future__ import annotations

import pytest

from tests.wasm_host import wat
from tests.wasm_host.conftest import MakeHandler
from wasm_host import (
    AbiMismatchError,
    HandlerExitError,
    InvalidCgiOutputError,
    WasmRequest,
)

REQUEST = WasmRequest(
    method="POST",
    path="/api/items/7",
    query="q=1&lang=ko",
    headers=(
        ("cf-ipcountry", "KR"),
        ("Accept", "application/json"),
        ("Content-Type", "application/json"),
        ("X-Many", "a"),
        ("x-many", "b"),
        ("cf_ipcountry", "US"),
    ),
    body=b'{"id": 7}',
    remote_addr="127.82.0.9",
    server_name="edge.test",
    server_port=8443,
    matched_route="/api/...",
    full_url="http://edge.test:8443/api/items/7?q=1&lang=ko",
)


def _environment(body: bytes) -> tuple[dict[str, str], bytes]:
    env_blob, _, stdin = body.partition(b"\n--stdin--\n")
    pairs = [item.decode().split("=", 1) for item in env_blob.split(b"\x00") if item]
    return dict(pairs), stdin


def test_cgi_environment_and_stdin(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.WAGI_ENV_AND_STDIN, env={"GREETING": "hi", "FEATURE": "on"})
    response = handler.handle(REQUEST)
    assert response.status == 200
    assert response.headers == (("content-type", "text/plain"),)
    env, stdin = _environment(response.body)
    assert stdin == b'{"id": 7}'
    assert env == {
        "GREETING": "hi",
        "FEATURE": "on",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "edgecdn-wasm-host/1",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/api",
        "PATH_INFO": "/items/7",
        "X_RAW_PATH_INFO": "/items/7",
        "QUERY_STRING": "q=1&lang=ko",
        "SERVER_NAME": "edge.test",
        "SERVER_PORT": "8443",
        "REMOTE_ADDR": "127.82.0.9",
        "X_MATCHED_ROUTE": "/api/...",
        "X_FULL_URL": "http://edge.test:8443/api/items/7?q=1&lang=ko",
        "CONTENT_LENGTH": "9",
        "CONTENT_TYPE": "application/json",
        "HTTP_CF_IPCOUNTRY": "KR",
        "HTTP_ACCEPT": "application/json",
        "HTTP_X_MANY": "a, b",
    }


def test_only_granted_environment_reaches_the_module(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.WAGI_ENV_AND_STDIN)
    env, stdin = _environment(handler.handle(WasmRequest(method="GET", path="/")).body)
    assert stdin == b""
    assert "GREETING" not in env
    assert "PATH" not in env  # nothing leaks from the host process
    assert "HOME" not in env
    assert all(name.isupper() for name in env)


def test_granting_a_reserved_name_is_refused(make_handler: MakeHandler) -> None:
    with pytest.raises(ValueError, match="set by the host"):
        make_handler(wat.WAGI_ENV_AND_STDIN, env={"HTTP_CF_IPCOUNTRY": "US"})
    with pytest.raises(ValueError, match="set by the host"):
        make_handler(wat.WAGI_ENV_AND_STDIN, env={"REMOTE_ADDR": "1.2.3.4"})


def test_proc_exit_zero_is_success(make_handler: MakeHandler) -> None:
    handler = make_handler(
        wat.wagi_print(b"status: 201 Created\ncontent-type: text/plain\n\nmade", exit_code=0)
    )
    response = handler.handle(REQUEST)
    assert (response.status, response.body) == (201, b"made")


def test_nonzero_exit_is_a_handler_failure(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.wagi_print(b"content-type: text/plain\n\npartial", exit_code=3))
    with pytest.raises(HandlerExitError) as caught:
        handler.handle(REQUEST)
    assert caught.value.exit_code == 3
    assert caught.value.kind == "exit"


def test_location_without_status_redirects(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.wagi_print(b"Location: /elsewhere\r\nX-Why: moved\r\n\r\n"))
    response = handler.handle(REQUEST)
    assert response.status == 302
    assert response.headers == (("location", "/elsewhere"), ("x-why", "moved"))
    assert response.body == b""


def test_malformed_cgi_output_is_rejected(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.wagi_print(b"this is not a header\n\nbody"))
    with pytest.raises(InvalidCgiOutputError) as caught:
        handler.handle(REQUEST)
    assert "not 'name: value'" in caught.value.reason


def test_missing_blank_line_is_rejected(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.wagi_print(b"content-type: text/plain\nno blank line"))
    with pytest.raises(InvalidCgiOutputError, match="no empty line"):
        handler.handle(REQUEST)


def test_empty_output_is_rejected(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.wagi_print(b""))
    with pytest.raises(InvalidCgiOutputError, match="printed nothing"):
        handler.handle(REQUEST)


def test_module_without_start_is_not_a_wagi_command(make_handler: MakeHandler) -> None:
    with pytest.raises(AbiMismatchError, match="_start"):
        make_handler(wat.WAGI_NO_START)
    with pytest.raises(AbiMismatchError, match=r"_start: \[\] -> \[\]"):
        make_handler(wat.WAGI_START_WITH_PARAMS)


def test_imports_beyond_wasi_are_refused(make_handler: MakeHandler) -> None:
    with pytest.raises(AbiMismatchError, match="env::sneaky"):
        make_handler(wat.WAGI_FOREIGN_IMPORT)


def test_no_state_survives_between_requests(make_handler: MakeHandler) -> None:
    # A large answer followed by a small one: the small one must not carry the tail of the
    # first (the stdout memfd is reused and must be truncated).
    big = make_handler(wat.wagi_flood(4))
    small = make_handler(wat.wagi_print(b"content-type: text/plain\n\nok"))
    assert len(big.handle(REQUEST).body) == 4 * 65536
    assert small.handle(REQUEST).body == b"ok"
    assert len(big.handle(REQUEST).body) == 4 * 65536
