"""Name resolution for handlers' outbound HTTP: aiohttp's resolver, then a refusal of any
link-local or cloud metadata address a name resolves to.

``wasm_host.outbound_policy`` judges a URL before any name resolution: it refuses those
addresses when a URL spells them, but a name that merely resolves there (a DNS record
pointing at ``169.254.169.254``, or a record changed between two requests) is not caught
by a decision that does no DNS. So the node's outbound connector resolves through
``GuardedResolver``: the same networks are refused after resolution, unless the operator
allows them (``--allow-outbound-network``). aiohttp never resolves an address literal, and
those the policy already judged.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from wasm_host.outbound_policy import BLOCKED_NETWORKS, NO_ALLOWANCE, Network, NetworkAllowance, normal_host


class BlockedAddressError(OSError):
    """A name resolved to a refused address."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(
            f"{host} resolves to {address}, a link-local or metadata address; refused unless the "
            "node's operator allows it (--allow-outbound-network)"
        )
        self.host = host
        self.address = address


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (aiohttp's default), refusing answers in ``blocked``."""

    def __init__(
        self,
        allowance: NetworkAllowance = NO_ALLOWANCE,
        *,
        inner: AbstractResolver | None = None,
        blocked: tuple[Network, ...] = BLOCKED_NETWORKS,
    ) -> None:
        self._allowance = allowance
        self._inner = inner if inner is not None else DefaultResolver()
        self._blocked = blocked

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        name = normal_host(host)
        for result in results:
            text = result["host"].split("%")[0]  # an IPv6 zone index is not part of the address
            address = ipaddress.ip_address(text)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            if any(address in network for network in self._blocked) and not self._allowance.allows(
                name, address
            ):
                raise BlockedAddressError(host, str(address))
        return results

    async def close(self) -> None:
        await self._inner.close()
