"""Errors of the rollout engine, all under one base that derives from the control plane's."""

from __future__ import annotations

from control_plane.errors import ControlPlaneError, InvalidRequestError


class RolloutError(ControlPlaneError):
    """Base class for rollout errors."""


class InvalidValueError(RolloutError, InvalidRequestError):
    """A value given to the engine is malformed; ``field`` names what is wrong.

    It is also an ``InvalidRequestError`` so the gRPC adapter answers INVALID_ARGUMENT.
    """


class RolloutSpecError(InvalidValueError):
    """A rollout spec (waves, limits, deadline) is malformed."""


class ActionRefusedError(RolloutError):
    """An operator action means nothing in the rollout's state (pause a finished rollout...)."""

    def __init__(self, *, rollout_id: str, state: str, action: str, reason: str) -> None:
        super().__init__(f"rollout {rollout_id} is {state}: {reason}")
        self.rollout_id = rollout_id
        self.state = state
        self.action = action
        self.reason = reason


class EventRefusedError(RolloutError):
    """An event the adapter must never send in this state (a second ``Started``, an incomplete one)."""

    def __init__(self, *, rollout_id: str, event: str, reason: str) -> None:
        super().__init__(f"rollout {rollout_id}: {event} refused: {reason}")
        self.rollout_id = rollout_id
        self.event = event
        self.reason = reason
