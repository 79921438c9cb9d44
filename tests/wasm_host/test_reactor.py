"""The reactor ABI with WAT probes: encoding round trip, fresh instances, hostile pointers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.wasm_host import wat
from tests.wasm_host.conftest import MakeHandler
from wasm_host import (
    AbiMismatchError,
    DeadlineExceededError,
    InvalidReactorOutputError,
    Limits,
    OutputTooLargeError,
    WasmRequest,
    WasmResponse,
    WasmTrapError,
    decode_response,
    encode_request,
)
from wasm_host.codec import decode_request, encode_response

REQUEST = WasmRequest(
    method="POST",
    path="/sensors/42",
    query="unit=c",
    headers=(("CF-IPCountry", "KR"), ("x-edge-region", "ap-northeast")),
    body=b"[1, 2, 3]",
    remote_addr="127.82.0.1",
    matched_route="/sensors/...",
)


def test_echo_round_trips_the_encoded_request(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.REACTOR_ECHO, abi="reactor")
    response = handler.handle(REQUEST)
    assert response.status == 200
    assert response.headers == (("x-echo", "1"), ("x-calls", "1"))
    assert response.body == encode_request(REQUEST)
    echoed = decode_request(response.body)
    assert echoed.headers == (("cf-ipcountry", "KR"), ("x-edge-region", "ap-northeast"))
    assert (echoed.method, echoed.path, echoed.query, echoed.body) == (
        "POST",
        "/sensors/42",
        "unit=c",
        b"[1, 2, 3]",
    )
    assert (echoed.remote_addr, echoed.matched_route) == ("127.82.0.1", "/sensors/...")


def test_every_request_gets_a_fresh_instance(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.REACTOR_ECHO, abi="reactor")
    # The module counts calls in a global: a reused instance would answer 2, 3, ...
    assert [handler.handle(REQUEST).header("x-calls") for _ in range(5)] == ["1"] * 5


def test_large_bodies_cross_the_boundary(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.REACTOR_ECHO, abi="reactor", limits=Limits(max_output_bytes=4 << 20))
    request = WasmRequest(method="PUT", path="/", body=bytes(range(256)) * 4096)
    assert decode_request(handler.handle(request).body).body == request.body


def test_wasi_reactor_gets_initialize_and_only_granted_env(make_handler: MakeHandler) -> None:
    granted = make_handler(
        wat.REACTOR_WASI_ENV, abi="reactor", env={"REGION_NAME": "ap-northeast", "MODE": "x"}
    )
    env = granted.handle(REQUEST).body.split(b"\x00")
    assert [item for item in env if item] == [b"REGION_NAME=ap-northeast", b"MODE=x"]
    bare = make_handler(wat.REACTOR_WASI_ENV, abi="reactor")
    assert bare.handle(REQUEST).body == b""  # no host environment leaks in


def test_deadline(make_handler: MakeHandler) -> None:
    handler = make_handler(wat.REACTOR_LOOP, abi="reactor", limits=Limits(timeout_s=0.02))
    with pytest.raises(DeadlineExceededError):
        handler.handle(REQUEST)


def test_trap(make_handler: MakeHandler) -> None:
    with pytest.raises(WasmTrapError) as caught:
        make_handler(wat.REACTOR_TRAP, abi="reactor").handle(REQUEST)
    assert caught.value.kind == "unreachable"


def test_alloc_outside_memory_is_refused(make_handler: MakeHandler) -> None:
    with pytest.raises(InvalidReactorOutputError, match="edge_alloc"):
        make_handler(wat.REACTOR_BAD_ALLOC, abi="reactor").handle(REQUEST)


@pytest.mark.parametrize(
    ("packed", "error"),
    [
        ((0x00FF0000 << 32) | 64, InvalidReactorOutputError),  # pointer past the memory
        ((0xFFFFFFF0 << 32) | 0xFF, InvalidReactorOutputError),  # wraps past 4 GiB
        ((0 << 32) | 0x7FFFFFFF, OutputTooLargeError),
        (-1, OutputTooLargeError),  # both halves 0xffffffff
        (0, InvalidReactorOutputError),  # empty response
        ((0 << 32) | 12, InvalidReactorOutputError),  # zeroed memory: status 0
    ],
)
def test_hostile_response_pointers(make_handler: MakeHandler, packed: int, error: type[Exception]) -> None:
    handler = make_handler(wat.reactor_returning(packed), abi="reactor")
    with pytest.raises(error):
        handler.handle(REQUEST)


def test_missing_or_mistyped_exports(make_handler: MakeHandler) -> None:
    with pytest.raises(AbiMismatchError, match="edge_alloc has type"):
        make_handler(wat.REACTOR_WRONG_TYPES, abi="reactor")
    with pytest.raises(AbiMismatchError, match="edge_alloc"):
        make_handler(wat.WAGI_UNREACHABLE, abi="reactor")


_names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda n: n not in {"connection", "keep-alive", "te", "trailer", "upgrade", "content-length"}
)
_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@given(
    status=st.integers(200, 599),
    headers=st.lists(st.tuples(_names, _values), max_size=8),
    body=st.binary(max_size=200),
)
def test_response_codec_round_trip(status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    response = WasmResponse(status=status, headers=tuple(headers), body=body)
    assert decode_response(encode_response(response)) == response


@given(st.binary(max_size=120))
def test_response_decoder_never_crashes(data: bytes) -> None:
    try:
        response = decode_response(data)
    except InvalidReactorOutputError as exc:
        reason = exc.reason
        assert reason
    else:
        assert 200 <= response.status <= 599


@given(
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    path=st.text(max_size=30),
    headers=st.lists(st.tuples(_names, st.text(max_size=20)), max_size=6),
    body=st.binary(max_size=100),
)
def test_request_codec_round_trip(
    method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    request = WasmRequest(method=method, path=path, headers=tuple(headers), body=body)
    assert decode_request(encode_request(request)) == request
