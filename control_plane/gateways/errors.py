"""Errors of the gateway coordinator; ``control_plane.gateways.service`` maps them to gRPC codes."""

from __future__ import annotations

from control_plane.errors import ControlPlaneError


class GatewayError(ControlPlaneError):
    """Base class of the coordinator's refusals."""


class InvalidCommandError(GatewayError):
    """The command or its targets are malformed (INVALID_ARGUMENT); ``field`` names what."""

    def __init__(self, *, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class UnknownGatewaysError(GatewayError):
    """Targets name gateways or regions no status has announced (NOT_FOUND)."""

    def __init__(self, *, what: str, names: tuple[str, ...]) -> None:
        super().__init__(f"unknown {what}: {', '.join(names)}")
        self.what = what
        self.names = names


class NoGatewaysMatchError(GatewayError):
    """The targets are valid but select no gateway (NOT_FOUND)."""

    def __init__(self, *, targets: str) -> None:
        super().__init__(f"no known gateway matches {targets}")
        self.targets = targets


class UnknownModuleError(GatewayError):
    """``update_module`` names a digest the module registry lacks (FAILED_PRECONDITION)."""

    def __init__(self, *, sha256: str) -> None:
        super().__init__(f"module {sha256} is not in the registry; push it first (edgectl modules push)")
        self.sha256 = sha256


class BrokerUnavailableError(GatewayError):
    """The coordinator is not connected to the broker right now (UNAVAILABLE)."""

    def __init__(self, *, url: str, reason: str) -> None:
        super().__init__(f"not connected to the MQTT broker at {url}: {reason}")
        self.url = url
        self.reason = reason
