"""Errors of the router. Each knows the HTTP status and the short ``kind`` a client sees.

The proxy turns one into a JSON body with ``client_json``: for what the client may know
(no healthy node anywhere, its own WAN path lost, a bad admin request) the message and
details as they are; for a failure to reach or hear from an edge node, only the kind, a
fixed sentence and the request id. Which node, its address and the OS error are the
operator's business: they go to the router's log under the request id and to the
request's trace, never to the client (issue 24, finding 6; as ``edge_node.errors``).
"""

from __future__ import annotations

from typing import Any

from runtime.errors import HttpFacingError


class RouterError(HttpFacingError):
    """Base class of the router's errors (status, ``kind``, JSON fields: see HttpFacingError)."""

    kind = "router_error"
    # What a client is told instead of the message and details; None: the message and
    # details are the client's to see (its own request was refused, or a plain fact).
    public_message: str | None = "the router failed unexpectedly"

    def client_json(self, request_id: str) -> dict[str, Any]:
        """The JSON body a client gets: never a node id, an address or an OS error."""
        if self.public_message is None:
            return {**self.to_json(), "request_id": request_id}
        return {"error": self.kind, "message": self.public_message, "request_id": request_id}


class NoHealthyNodeError(RouterError):
    """No edge node anywhere can take the request."""

    status = 503
    kind = "no_healthy_node"
    public_message = None  # "no healthy edge node can serve this request": nothing inside


class UpstreamUnavailableError(RouterError):
    """The chosen edge nodes could not be reached, or did not answer properly."""

    status = 502
    kind = "upstream_unavailable"
    public_message = "the edge node failed to answer"


class UpstreamConnectError(UpstreamUnavailableError):
    """No connection to the node: it never saw the request, so any request may go elsewhere."""

    kind = "upstream_connect_failed"
    public_message = "the edge node could not be reached"


class UpstreamClosedError(UpstreamUnavailableError):
    """The connection died before a whole answer (the node was killed or restarted)."""

    kind = "upstream_closed"
    public_message = "the edge node's connection closed before a whole answer"


class UpstreamProtocolError(UpstreamUnavailableError):
    """The node's answer was not valid HTTP/1.1."""

    kind = "upstream_bad_answer"
    public_message = "the edge node's answer was not valid HTTP"


class UpstreamTimeoutError(RouterError):
    """The edge node did not answer in time."""

    status = 504
    kind = "upstream_timeout"
    public_message = "the edge node did not answer in time"


class WanLossError(RouterError):
    """The emulated WAN lost a one-way trip for good: the client's TCP would have given up."""

    status = 504
    kind = "wan_loss"
    # The emulated world's own fact (a fault an operator injected on a region), told whole.
    public_message = None


class FaultSpecError(RouterError):
    """A WAN fault an operator asked for is not valid; ``field`` names what was wrong."""

    status = 400
    kind = "bad_request"
    public_message = None


class InventoryError(RouterError):
    """The edge inventory given by flags or file is wrong (a start-up error, not a request's)."""

    kind = "bad_inventory"
    public_message = None
