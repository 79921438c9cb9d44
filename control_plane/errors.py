"""Errors of the control plane; the gRPC adapter (``control_plane.grpc_errors``) maps them to status codes."""

from __future__ import annotations

from typing import Literal


class ControlPlaneError(Exception):
    """Base class for control-plane errors."""


class NotFoundError(ControlPlaneError):
    """A named thing (module, app, deployment) is not known."""

    def __init__(self, *, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key} not found")
        self.kind = kind
        self.key = key


class InvalidRequestError(ControlPlaneError):
    """A request is malformed; ``field`` names what is wrong."""

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ModuleRejectedError(ControlPlaneError):
    """An uploaded module was refused: bad digest, bad size, or it does not compile."""

    def __init__(self, *, code: str, reason: str, sha256: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.sha256 = sha256


class ModuleInUseError(ControlPlaneError):
    """A module cannot be deleted while app versions refer to it."""

    def __init__(self, *, sha256: str, used_by: tuple[str, ...]) -> None:
        super().__init__(f"module {sha256[:12]} is used by {', '.join(used_by)}")
        self.sha256 = sha256
        self.used_by = used_by


class AppConflictError(ControlPlaneError):
    """``name@version`` is already registered with different content (versions are immutable)."""

    def __init__(self, *, name: str, version: str) -> None:
        super().__init__(f"app {name}@{version} is already registered with different content")
        self.name = name
        self.version = version


class StoreError(ControlPlaneError):
    """The data directory (SQLite database or blob directory) cannot be used."""

    def __init__(self, *, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class TokensFileError(ControlPlaneError):
    """The tokens file is missing or malformed."""

    def __init__(self, *, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class NodeClaimError(ControlPlaneError):
    """A node session refused for who opens it: ``forbidden`` when the credential may not be
    that node (another node id or region), ``taken`` when the node has a live session opened
    with another credential."""

    def __init__(self, *, node_id: str, kind: Literal["forbidden", "taken"], reason: str) -> None:
        super().__init__(reason)
        self.node_id = node_id
        self.kind = kind
        self.reason = reason
