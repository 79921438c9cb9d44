"""Errors of the fault relay. Each knows the HTTP status and the short ``kind`` an admin client sees.

The admin adapter turns them into a JSON body ``{"error": kind, "message": ..., ...}``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from runtime.errors import HttpFacingError


class FaultRelayError(HttpFacingError):
    """Base class of the fault relay's errors (status, ``kind``, JSON fields: see HttpFacingError)."""

    kind = "faultrelay_error"


class UnknownLinkError(FaultRelayError):
    """A request named a link this relay does not carry."""

    status = 404
    kind = "unknown_link"

    def __init__(self, *, link: str, known: Iterable[str]) -> None:
        names = sorted(known)
        super().__init__(f"no link named {link!r}; known links: {', '.join(names)}", link=link, known=names)
        self.link = link
        self.known = tuple(names)


class BadFaultRequestError(FaultRelayError):
    """A fault request's body is not what the admin API accepts; ``reason`` says what was wrong."""

    status = 400
    kind = "bad_request"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnauthorizedError(FaultRelayError):
    """An admin request without the right bearer token."""

    status = 401
    kind = "unauthorized"


class ListenError(FaultRelayError):
    """A listener cannot be bound (a start-up error: the port is taken, the address is not ours)."""

    kind = "cannot_listen"

    def __init__(self, *, what: str, host: str, port: int, exc: OSError) -> None:
        # asyncio words its bind errors with the address again; the errno alone says it.
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        super().__init__(f"{what}: cannot listen on {host}:{port}: {reason}", host=host, port=port)
        self.reason = reason


class StateFileError(FaultRelayError):
    """The fault state file cannot be read or does not hold the relay's state (a start-up error)."""

    kind = "bad_state_file"

    def __init__(self, *, path: str, reason: str) -> None:
        super().__init__(f"state file {path}: {reason}", path=path)
        self.path = path
        self.reason = reason
