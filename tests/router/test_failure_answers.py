"""Issue 24, finding 6, the router's half: what a client learns of the router's own failures.

Before, a 502/504 the router made itself told the client the node's id, its host:port and
the OS error ("edge node seoul-a: cannot connect to 127.0.0.1:7001: Connection refused").
Now the client gets the kind, a fixed sentence and a request id (``x-request-id`` and the
body's ``request_id``); the detail goes to the router's log under that id, within a budget,
and to the request's SERVER span. Pure parts here; through a real router process at the end
(the fast path's own answers: tests/router/test_fastpath.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.world import World
from httpfront.messages import FrontRequest
from router.errors import (
    NoHealthyNodeError,
    RouterError,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    WanLossError,
)
from router.failures import FailureAnswers
from router.policy import Candidate, NodeView
from router.telemetry import RouterTelemetry, RouteSpan
from simulator.supervisor import Supervisor
from tests.edge_node.test_http_adapter_answers import log_line
from tests.router.conftest import free_port, router_spec, url_of

NODE = NodeView(node_id="seoul-a", region="ap-northeast-2", url="http://127.0.0.1:7001")
CHOSEN = Candidate(node=NODE, reason="nearest", rtt_ms=3.5)
DETAIL = "edge node seoul-a: cannot connect to 127.0.0.1:7001: [Errno 111] Connection refused"
CONNECT, REACH = "upstream_connect_failed", "the edge node could not be reached"
INSIDES = ("seoul-a", "127.0.0.1", "7001", "Errno", "refused")
HIDDEN: list[type[RouterError]] = [
    UpstreamUnavailableError, UpstreamConnectError, UpstreamClosedError, UpstreamProtocolError,
    UpstreamTimeoutError,
]  # fmt: skip


class _Request:
    """The two fields of a FrontRequest that the failure log reads."""

    method = "GET"
    path = "/hello"


REQUEST = cast("FrontRequest", _Request())


@pytest.mark.parametrize("kind", HIDDEN, ids=lambda kind: kind.kind)
@given(message=st.text(), port=st.integers(1, 65535))
def test_an_upstream_failure_tells_the_client_its_kind_and_a_fixed_sentence_only(
    kind: type[RouterError], message: str, port: int
) -> None:
    error = kind(message, node="seoul-a", address=f"127.0.0.1:{port}")
    body = error.client_json("00ff00ff00ff00ff")
    assert body == {"error": kind.kind, "message": kind.public_message, "request_id": "00ff00ff00ff00ff"}


def test_the_kinds_and_statuses_are_unchanged() -> None:
    assert [(kind.kind, kind.status) for kind in HIDDEN] == [
        ("upstream_unavailable", 502), ("upstream_connect_failed", 502), ("upstream_closed", 502),
        ("upstream_bad_answer", 502), ("upstream_timeout", 504),
    ]  # fmt: skip


def test_what_the_client_may_know_is_told_whole_with_the_request_id() -> None:
    none = NoHealthyNodeError("no healthy edge node can serve this request")
    assert none.client_json("ab") == {**none.to_json(), "request_id": "ab"}
    assert none.client_json("ab")["message"] == "no healthy edge node can serve this request"
    lost = WanLossError("emulated packet loss: ...", region="eu-west-1", fault_id="f1", trip="answer")
    assert lost.client_json("cd") == {**lost.to_json(), "request_id": "cd"}


def test_an_answer_has_the_id_the_route_and_no_insides_and_the_log_has_the_detail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="router.failures"):
        headers, body = FailureAnswers().answer(UpstreamConnectError(DETAIL), REQUEST, CHOSEN)
    named = dict(headers)
    request_id = named[b"x-request-id"].decode()
    assert json.loads(body) == {"error": CONNECT, "message": REACH, "request_id": request_id}
    assert not any(inside.encode() in body for inside in INSIDES)
    assert named[b"x-edge-route"] == b"region=ap-northeast-2; node=seoul-a; reason=nearest; rtt_ms=3.5"
    [line] = caplog.messages
    assert line.startswith(f"request {request_id}: GET /hello answered 502 upstream_connect_failed")
    assert "via node seoul-a at http://127.0.0.1:7001" in line
    assert DETAIL in line


def test_a_public_answer_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="router.failures"):
        headers, body = FailureAnswers().answer(NoHealthyNodeError("no healthy edge node"), REQUEST, None)
    assert json.loads(body)["request_id"] == dict(headers)[b"x-request-id"].decode()
    assert b"x-edge-route" not in dict(headers)
    assert caplog.messages == []


def test_failure_lines_stay_within_the_budget(caplog: pytest.LogCaptureFixture) -> None:
    answers = FailureAnswers(per_second=3)
    with caplog.at_level(logging.WARNING, logger="router.failures"):
        ids = [
            dict(answers.answer(UpstreamClosedError(DETAIL), REQUEST, CHOSEN)[0])[b"x-request-id"]
            for _ in range(10)
        ]
    assert len(set(ids)) == 10  # every answer has its own id, logged or not
    assert 3 <= len(caplog.messages) <= 6  # 3 a second (the test may straddle a second)


class _Trace:
    """Stands in for a RequestTrace: keeps what the server span was finished with."""

    trace_id = bytes(16)

    def __init__(self) -> None:
        self.finished: tuple[Any, bytes, bytes] | None = None

    def finish(self, name: Any, attributes: bytes = b"", status: bytes = b"") -> None:
        self.finished = (name, attributes, status)


def test_the_server_span_has_the_kind_the_request_id_and_the_detail() -> None:
    trace = _Trace()
    span = RouteSpan(cast("Any", trace), "10.0.0.1", "KR")
    _, body = FailureAnswers().answer(UpstreamConnectError(DETAIL), REQUEST, CHOSEN, span)
    request_id = json.loads(body)["request_id"]
    RouterTelemetry(tracer=cast("Any", None)).finish(span, "GET", "/hello", CHOSEN, 502)
    assert trace.finished is not None
    _, attributes, status = trace.finished
    assert b"edgecdn.request_id" in attributes
    assert request_id.encode() in attributes
    assert b"error.type" in attributes
    assert b"upstream_connect_failed" in attributes
    assert DETAIL.encode() in status


async def test_a_router_whose_node_is_unreachable_answers_without_its_insides(
    supervisor: Supervisor, world: World, geo_cache_dir: Path
) -> None:
    """The async path: no kept-alive connection, so the router connects, and is refused."""
    port = free_port()
    router = await supervisor.start(
        router_spec(
            geo_cache_dir, "--wan", "off", "--health-interval", "30",
            "--edge", f"ap-northeast-2/seoul-a=http://127.0.0.1:{port}",
        )
    )  # fmt: skip
    connector = aiohttp.TCPConnector(local_addr=(world.country("KR").client_address(1), 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as client,
        client.get(f"{url_of(router)}/hello") as response,
    ):
        assert response.status == 502
        request_id = response.headers["x-request-id"]
        text = await response.text()
    assert json.loads(text) == {"error": CONNECT, "message": REACH, "request_id": request_id}
    assert not any(inside in text for inside in ("seoul-a", "127.0.0.1", str(port), "refused"))
    line = await log_line(router, request_id)
    assert "upstream_connect_failed via node seoul-a" in line
    assert f"127.0.0.1:{port}" in line
    assert "refused" in line.lower()
