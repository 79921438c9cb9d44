"""What a node does after its session ended: how long to wait and what to say (pure)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import grpc

from cpclient.backoff import Backoff
from cpclient.session_model import NodeIdentity

# Refusals the control plane repeats until an operator changes something (the node's token,
# node id or region, or the control plane's tokens file): retried at the slowest pace, and
# said loudly once, not logged like a dropped connection.
PERMANENT_REFUSALS = frozenset({grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED})


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconnect:
    """What to do after a session ended: wait ``delay_s``, and log ``message`` at ``level``.
    ``refused``: the control plane refused this node for good (until someone fixes it)."""

    delay_s: float
    level: int
    message: str
    refused: bool


def plan_reconnect(
    *,
    identity: NodeIdentity,
    code: grpc.StatusCode | None,
    error: str,
    attempt: int,
    backoff: Backoff,
    rng: random.Random,
    told: frozenset[str],
) -> Reconnect:
    """After a session ended with ``error`` (gRPC ``code``, None when it was no RPC error):
    a transient end backs off from ``attempt`` and is logged at INFO; a refusal goes to the
    maximum interval at once (the operator may fix the tokens file: keep trying, slowly) and
    is logged at ERROR the first time its text is seen (``told``), at DEBUG after."""
    if code not in PERMANENT_REFUSALS:
        delay = backoff.delay(attempt, rng)
        message = f"node {identity.node_id}: session ended ({error}); retry in {delay:.2f} s"
        return Reconnect(delay_s=delay, level=logging.INFO, message=message, refused=False)
    delay = backoff.delay(64, rng)  # the maximum interval (less its jitter)
    message = (
        f"node {identity.node_id}: the control plane refuses this node ({error}): the credential"
        f" does not allow node id {identity.node_id!r} in region {identity.region!r};"
        f" check --token / --node-id / --region (or the control plane's tokens file); retry in {delay:.2f} s"
    )
    level = logging.DEBUG if error in told else logging.ERROR
    return Reconnect(delay_s=delay, level=level, message=message, refused=True)
