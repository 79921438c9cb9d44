"""The router's own error answers: what the client is told, and what only the operator is.

Every error answer the router makes itself carries a fresh request id (``x-request-id``
and the body's ``request_id``). For a failure to reach or hear from an edge node the
body is only the kind, a fixed sentence and that id (``RouterError.client_json``); the
node, its address and the OS error go to one log line under the id (at most
``FAILURE_LOG_PER_S`` a second, so a dead node under load is not a flood of log writes)
and, when the request is traced, to its SERVER span. An edge node's own error answer is
not made here: the proxy passes it on as it came, with the node's request id.
"""

from __future__ import annotations

import json
import logging
import time

from httpfront.flow import RawHeaders
from httpfront.messages import FrontRequest
from router.errors import RouterError
from router.headers import error_answer
from router.policy import Candidate
from router.telemetry import RouteSpan
from runtime.failure_log import FAILURE_LOG_PER_S, LogBudget, new_request_id

logger = logging.getLogger(__name__)


class FailureAnswers:
    """Makes the router's error answers and logs, within a budget, what they leave out."""

    def __init__(self, per_second: int = FAILURE_LOG_PER_S) -> None:
        self._budget = LogBudget(per_second)

    def answer(
        self,
        error: RouterError,
        request: FrontRequest,
        chosen: Candidate | None,
        span: RouteSpan | None = None,
        *,
        tried: Candidate | None = None,
    ) -> tuple[RawHeaders, bytes]:
        """The headers and JSON body of ``error``'s answer to ``request`` (``chosen`` names
        the route, if any); the detail is logged under the answer's request id, with the node
        that failed (``tried``, else ``chosen``), and noted on ``span`` for its trace."""
        request_id = new_request_id()
        if span is not None:
            span.error = error
            span.request_id = request_id
        if error.public_message is not None:  # the router's business: its log says what
            self._log(request_id, error, request, tried or chosen, span)
        return error_answer(error, chosen, request_id)

    def _log(
        self,
        request_id: str,
        error: RouterError,
        request: FrontRequest,
        chosen: Candidate | None,
        span: RouteSpan | None,
    ) -> None:
        suppressed = self._budget.take(time.monotonic())
        if suppressed is None:
            return
        node = f" via node {chosen.node.node_id} at {chosen.node.url}" if chosen is not None else ""
        logger.warning(
            "request %s: %s %s answered %d %s%s: %s%s%s%s",
            request_id, request.method, request.path, error.status, error.kind, node, error.message,
            f" {json.dumps(error.details, default=str)}" if error.details else "",
            f" trace {span.trace.trace_id.hex()}" if span is not None else "",
            f" ({suppressed} failure lines over the budget were not logged)" if suppressed else "",
        )  # fmt: skip
