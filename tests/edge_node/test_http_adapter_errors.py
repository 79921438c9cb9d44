"""What a client is told of a failure, decided without a server: ``client_json`` never shows
a failure's detail when the failure is the node's business, and the failure log's budget."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from edge_node.errors import (
    HANDLER_MESSAGES,
    BodyTooLargeError,
    EdgeNodeError,
    HandlerFailedError,
    HeadersTooLargeError,
    NoAppError,
    OriginError,
    RouteNotFoundError,
)
from wasm_host.errors import (
    DeadlineExceededError,
    HandlerError,
    HandlerExitError,
    InstanceLimitError,
    InvalidCgiOutputError,
    MemoryLimitError,
    OutputTooLargeError,
    WasmTrapError,
)

DIGEST = "ab" * 32
# Text a failure may carry; the "~" (in no answer a client gets) keeps it from matching by chance.
SECRET = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=4, max_size=40).map(
    lambda text: "~" + text
)


def handler_errors(secret: str) -> list[HandlerError]:
    return [
        WasmTrapError(secret, secret),
        HandlerExitError(70),
        DeadlineExceededError(0.05),
        MemoryLimitError(1 << 20, secret),
        OutputTooLargeError(1 << 20, 1 << 21),
        InvalidCgiOutputError(secret),
        InstanceLimitError(secret),
        HandlerError(secret),
    ]


@given(secret=SECRET, module=SECRET)
def test_a_handler_failure_shows_the_client_its_kind_and_request_id_only(secret: str, module: str) -> None:
    for cause in handler_errors(secret):
        error = HandlerFailedError(cause, module=module, digest=DIGEST)
        answer = error.client_json("0123456789abcdef")
        assert answer == {
            "error": error.kind,
            "message": HANDLER_MESSAGES[error.kind],
            "request_id": "0123456789abcdef",
        }
        text = json.dumps(answer)
        for internal in (secret, module, DIGEST, str(cause)):
            assert internal not in text
        # ... while the detail stays on the error, for the log and the trace.
        assert error.details["digest"] == DIGEST
        assert str(cause) in error.message


@given(secret=SECRET)
def test_other_internal_failures_show_the_kind_only(secret: str) -> None:
    for error in (OriginError(f"origin {secret} failed", origin=secret), EdgeNodeError(secret)):
        text = json.dumps(error.client_json("r"))
        assert secret not in text
        assert json.loads(text)["error"] == error.kind


def test_the_clients_own_mistakes_keep_their_detail() -> None:
    for error in (
        RouteNotFoundError("no route of app a@1 matches /x"),
        BodyTooLargeError("request body too large", limit_bytes=10),
        HeadersTooLargeError("request headers too large", limit_bytes=10),
        NoAppError("this node has no app assigned yet"),
    ):
        assert error.client_json("r") == {**error.to_json(), "request_id": "r"}
