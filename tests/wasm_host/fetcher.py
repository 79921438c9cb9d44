"""A real fetcher for the outbound tests (edge_http and components): http.client on the
calling thread, as the host calls a fetcher, honouring the timeout it is given."""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field

from wasm_host.outbound import OutboundError, OutboundRequest, OutboundResponse
from wasm_host.outbound_policy import NO_ALLOWANCE, NetworkAllowance


@dataclass
class BlockingFetcher:
    """http.client on the calling thread, honouring the timeout it is given; ``self``
    targets go to ``origin`` (the node sends them to the route's origin)."""

    origin: tuple[str, int] = ("127.0.0.1", 9)
    allowance: NetworkAllowance = NO_ALLOWANCE
    refusals: list[tuple[str, str]] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)

    def fetch(self, request: OutboundRequest, timeout_s: float) -> OutboundResponse:
        self.timeouts.append(timeout_s)
        target = request.target
        self.fetched.append(target.url)
        host, port = self.origin if target.is_self else (target.host, target.port)
        connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            connection.request(
                request.method, target.path_query, body=request.body or None, headers=dict(request.headers)
            )
            response = connection.getresponse()
            body = response.read(request.max_body_bytes + 1)
        except TimeoutError as exc:
            raise OutboundError("timeout", f"{target.url} did not answer within {timeout_s:.3f}s") from exc
        except OSError as exc:
            raise OutboundError("failed", f"{target.url}: {exc}") from exc
        finally:
            connection.close()
        if len(body) > request.max_body_bytes:
            raise OutboundError("too-many-bytes", f"the answer exceeds {request.max_body_bytes} bytes")
        headers = tuple((k.lower(), v) for k, v in response.getheaders())
        return OutboundResponse(status=response.status, headers=headers, body=body)

    def refused(self, module: str, url: str, reason: str, message: str) -> None:
        self.refusals.append((url, reason))
