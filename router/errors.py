"""Errors of the router. Each knows the HTTP status and the short ``kind`` a client sees.

The HTTP adapter turns them into a JSON body ``{"error": kind, "message": ..., ...}``.
"""

from __future__ import annotations

from runtime.errors import HttpFacingError


class RouterError(HttpFacingError):
    """Base class of the router's errors (status, ``kind``, JSON fields: see HttpFacingError)."""

    kind = "router_error"


class NoHealthyNodeError(RouterError):
    """No edge node anywhere can take the request."""

    status = 503
    kind = "no_healthy_node"


class UpstreamUnavailableError(RouterError):
    """The chosen edge nodes could not be reached, or did not answer properly."""

    status = 502
    kind = "upstream_unavailable"


class UpstreamConnectError(UpstreamUnavailableError):
    """No connection to the node: it never saw the request, so any request may go elsewhere."""

    kind = "upstream_connect_failed"


class UpstreamClosedError(UpstreamUnavailableError):
    """The connection died before a whole answer (the node was killed or restarted)."""

    kind = "upstream_closed"


class UpstreamProtocolError(UpstreamUnavailableError):
    """The node's answer was not valid HTTP/1.1."""

    kind = "upstream_bad_answer"


class UpstreamTimeoutError(RouterError):
    """The edge node did not answer in time."""

    status = 504
    kind = "upstream_timeout"


class WanLossError(RouterError):
    """The emulated WAN lost a one-way trip for good: the client's TCP would have given up."""

    status = 504
    kind = "wan_loss"


class FaultSpecError(RouterError):
    """A WAN fault an operator asked for is not valid; ``field`` names what was wrong."""

    status = 400
    kind = "bad_request"


class InventoryError(RouterError):
    """The edge inventory given by flags or file is wrong (a start-up error, not a request's)."""

    kind = "bad_inventory"
