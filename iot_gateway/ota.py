"""The over-the-air update policy: pure, synchronous, no I/O (the adapter in ``gateway.py``
downloads, compiles, trials and persists; this module decides).

A gateway runs ``current``; ``last_good`` is the module that proved itself (the initial one,
or an update that passed probation) and is what lies on disk for a restart. An update that
passed its trial on the last batch becomes ``current`` on probation for ``probation`` batches;
a failed batch during probation rolls back to ``last_good`` by itself; a clean probation makes
the update the new ``last_good``. Events in, a new state and effects out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class OtaState:
    current: str
    last_good: str
    probation_left: int = 0
    rollbacks_total: int = 0
    last_error: str | None = None

    @property
    def on_probation(self) -> bool:
        return self.probation_left > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Adopted:
    """An update passed its trial on the last batch."""

    digest: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused:
    """An update could not be fetched, verified, compiled or failed its trial."""

    digest: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchRan:
    """The current module ran one batch; ``error`` says why it failed, empty when it did not."""

    error: str = ""


Event = Adopted | Refused | BatchRan


@dataclass(frozen=True, slots=True, kw_only=True)
class Switch:
    """Run ``digest`` from the next batch on."""

    digest: str
    why: Literal["update", "rollback"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Persist:
    """Keep ``digest`` on disk as the last good module."""

    digest: str


Effect = Switch | Persist


def initial(digest: str) -> OtaState:
    return OtaState(current=digest, last_good=digest)


def step(state: OtaState, event: Event, *, probation: int) -> tuple[OtaState, tuple[Effect, ...]]:
    """The state after ``event`` and what the adapter must do about it."""
    if isinstance(event, Adopted):
        return _adopted(state, event, probation)
    if isinstance(event, Refused):
        return replace(state, last_error=f"update to {event.digest[:12]} refused: {event.reason}"), ()
    return _batch_ran(state, event)


def _adopted(state: OtaState, event: Adopted, probation: int) -> tuple[OtaState, tuple[Effect, ...]]:
    if event.digest == state.current:
        return state, ()
    if probation <= 0:
        adopted = replace(state, current=event.digest, last_good=event.digest, probation_left=0)
        return adopted, (Switch(digest=event.digest, why="update"), Persist(digest=event.digest))
    # Updating again while on probation: the fallback stays the module that proved itself.
    trial = replace(state, current=event.digest, probation_left=probation)
    return trial, (Switch(digest=event.digest, why="update"),)


def _batch_ran(state: OtaState, event: BatchRan) -> tuple[OtaState, tuple[Effect, ...]]:
    if not state.on_probation:
        return (replace(state, last_error=event.error), ()) if event.error else (state, ())
    if event.error:
        back = replace(
            state,
            current=state.last_good,
            probation_left=0,
            rollbacks_total=state.rollbacks_total + 1,
            last_error=f"rolled back from {state.current[:12]}: {event.error}",
        )
        return back, (Switch(digest=state.last_good, why="rollback"),)
    left = state.probation_left - 1
    if left == 0:
        return replace(state, last_good=state.current, probation_left=0), (Persist(digest=state.current),)
    return replace(state, probation_left=left), ()


def startup_module(*, configured: str, on_disk: str | None, on_disk_loads: bool) -> str:
    """Which module to run after a (re)start: the last good one kept on disk when it still
    loads (so a restart keeps an update even while the control plane is away), else the one
    configured on the command line."""
    return on_disk if on_disk is not None and on_disk_loads else configured
