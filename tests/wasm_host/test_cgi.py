"""The pure CGI side: response parser (with Hypothesis) and environment builder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wasm_host import InvalidCgiOutputError, WasmRequest, cgi_environ, parse_cgi_response
from wasm_host.cgi import script_name

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
names = st.text(_TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda n: (
        n
        not in {"status", "location", "content-type", "content-length", "connection", "keep-alive"}
        | {"proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
    )
)
values = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00\x7f").filter(
        lambda c: ord(c) >= 0x20 or c == "\t"
    ),
    max_size=40,
).map(lambda v: v.strip(" \t"))


@given(
    status=st.one_of(st.none(), st.integers(200, 599)),
    content_type=st.sampled_from(["text/plain", "application/json; charset=utf-8"]),
    headers=st.lists(st.tuples(names, values), max_size=10),
    body=st.binary(max_size=300),
    newline=st.sampled_from([b"\n", b"\r\n"]),
)
def test_rendered_responses_parse_back(
    status: int | None,
    content_type: str,
    headers: list[tuple[str, str]],
    body: bytes,
    newline: bytes,
) -> None:
    lines = [f"Content-Type: {content_type}"]
    if status is not None:
        lines.append(f"Status: {status} Whatever")
    lines += [f"{name}: {value}" for name, value in headers]
    output = newline.join(line.encode() for line in lines) + newline + newline + body
    response = parse_cgi_response(output)
    assert response.status == (status or 200)
    assert response.body == body
    assert response.headers == (("content-type", content_type), *headers)


@given(st.binary(max_size=200))
def test_arbitrary_output_parses_or_fails_cleanly(output: bytes) -> None:
    try:
        response = parse_cgi_response(output)
    except InvalidCgiOutputError as exc:
        reason = exc.reason
        assert reason
    else:
        assert 200 <= response.status <= 599
        assert all(name == name.lower() for name, _ in response.headers)


def test_mixed_line_endings_and_whitespace() -> None:
    response = parse_cgi_response(b"content-type:text/html\r\nx-a:   spaced \t\n\r\n<p>")
    assert response.headers == (("content-type", "text/html"), ("x-a", "spaced"))
    assert response.body == b"<p>"


def test_body_may_contain_blank_lines() -> None:
    assert parse_cgi_response(b"content-type: a/b\n\nline\n\nmore\n").body == b"line\n\nmore\n"


def test_status_alone_is_enough() -> None:
    response = parse_cgi_response(b"Status: 404\n\n")
    assert (response.status, response.headers, response.body) == (404, (), b"")


def test_location_with_status_keeps_the_status() -> None:
    response = parse_cgi_response(b"status: 301 Moved\nlocation: https://x.test/\n\n")
    assert response.status == 301


def test_matching_content_length_is_dropped() -> None:
    response = parse_cgi_response(b"content-type: a/b\ncontent-length: 2\n\nok")
    assert response.headers == (("content-type", "a/b"),)


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (b"", "printed nothing"),
        (b"\n\nbody", "starts with an empty line"),
        (b"content-type: a/b", "no empty line"),
        (b"x-only: 1\n\n", "no content-type, status or location"),
        (b"status: 199\n\n", "outside 200..599"),
        (b"status: abc\n\n", "3-digit"),
        (b"status: 200\nstatus: 201\n\n", "more than one status"),
        (b"content-type: a\ncontent-type: b\n\n", "more than once"),
        (b"content-type:\n\n", "empty"),
        (b"content-type: a/b\ncontent-length: 5\n\nok", "content-length"),
        (b"content-type: a/b\ntransfer-encoding: chunked\n\n", "hop-by-hop"),
        (b"content-type: a/b\nbad name: x\n\n", "not a token"),
        (b"content-type: a/b\nno colon here\n\n", "name: value"),
        (b"content-type: a/b\nx: 1\ry: 2\n\n", "control character"),
        (b"content-type: a/b\nx: a\x01b\n\n", "control character"),
        (b"content-type: \xff\n\n", "not UTF-8"),
        (b"content-type: a/b\n" + b"x: y\n" * 100 + b"\n", "more than 100"),
    ],
)
def test_invalid_outputs_say_why(output: bytes, reason: str) -> None:
    with pytest.raises(InvalidCgiOutputError) as caught:
        parse_cgi_response(output)
    assert reason in caught.value.reason


def test_environment_maps_headers_and_route() -> None:
    request = WasmRequest(
        method="GET",
        path="/hello",
        headers=(("CF-IPCountry", "JP"), ("Cookie", "a=1"), ("cookie", "b=2"), ("Proxy", "evil")),
        matched_route="/hello",
    )
    env = dict(cgi_environ(request))
    assert env["HTTP_CF_IPCOUNTRY"] == "JP"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_PROXY" not in env  # httpoxy
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/hello", "")
    assert env["CONTENT_LENGTH"] == "0"
    assert "CONTENT_TYPE" not in env


def test_underscored_header_cannot_spoof_a_trusted_one() -> None:
    request = WasmRequest(method="GET", path="/", headers=(("cf_ipcountry", "US"),))
    assert "HTTP_CF_IPCOUNTRY" not in dict(cgi_environ(request))


def test_nul_in_a_value_never_reaches_a_c_string() -> None:
    request = WasmRequest(method="GET", path="/", query="a\x00b", headers=(("x-a", "1\x002"),))
    env = dict(cgi_environ(request))
    assert env["QUERY_STRING"] == ""
    assert env["HTTP_X_A"] == ""


@pytest.mark.parametrize(
    ("route", "expected"), [("/api/...", "/api"), ("/hello", "/hello"), ("", ""), ("/...", "")]
)
def test_script_name(route: str, expected: str) -> None:
    assert script_name(route) == expected
