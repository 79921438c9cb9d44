"""Request and response values exchanged with a handler, independent of the ABI that carries them."""

from __future__ import annotations

from dataclasses import dataclass

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class WasmRequest:
    """One HTTP request as the handler sees it.

    ``headers`` keep their order and repeats; names may be in any case. ``matched_route`` is
    the manifest route that selected the handler ("/hello" or "/api/..."), ``full_url`` the
    absolute URL the client asked for.
    """

    method: str
    path: str
    query: str = ""
    headers: Headers = ()
    body: bytes = b""
    remote_addr: str = ""
    server_name: str = "localhost"
    server_port: int = 80
    matched_route: str = ""
    full_url: str = ""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class WasmResponse:
    """A handler's answer; header names are lower case and never include hop-by-hop fields."""

    status: int
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None
