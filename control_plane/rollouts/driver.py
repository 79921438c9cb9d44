"""The rollout engine's adapter: feeds the pure machine from the fleet, the statistics and a
timer, carries out its commands, persists every change, and tells watchers.

Every ``tick_s`` (0.5 s) each active rollout gets, in order, what changed in the fleet
(its wave's deployment progress, a NACK, its restores' ACKs), fresh gate figures while it
bakes, and a ``Tick``; each step's new rollout is saved with its transitions before its
``Deploy``/``Restore`` commands are carried out, so a control plane killed at any moment
resumes from the store (``Resumed``) without deploying an acknowledged wave twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from control_plane.apps import AppRegistry
from control_plane.errors import InvalidRequestError, NotFoundError
from control_plane.fleet import Fleet
from control_plane.rollouts import fleetview
from control_plane.rollouts.errors import ActionRefusedError
from control_plane.rollouts.events import (
    Command,
    Deploy,
    Event,
    GateFigures,
    Nacked,
    Notify,
    OperatorAction,
    Record,
    Restore,
    RestoreAcked,
    RestoreFailed,
    Resumed,
    Started,
    Tick,
    WaveProgress,
)
from control_plane.rollouts.gates import Figures
from control_plane.rollouts.gateway_waves import (
    NO_BROKER,
    GatewayMover,
    check_gateway_start,
    combined_progress,
)
from control_plane.rollouts.machine import step
from control_plane.rollouts.model import NOTHING, ActionKind, Rollout, RolloutSpec, RolloutState, new_rollout
from control_plane.rollouts.store import RolloutStore
from protos.edgecdn.v1 import common_pb2

if TYPE_CHECKING:
    from control_plane.gateways.coordinator import Coordinator

logger = logging.getLogger(__name__)

TICK_S = 0.5
WATCH_QUEUE_SIZE = 256


class FiguresSource(Protocol):
    """Exact request figures of one app version in some regions over a time range."""

    def figures(
        self, *, regions: Collection[str], app: str, version: str, since: float, until: float
    ) -> Figures: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RolloutChange:
    """What watchers receive: the rollout after a change, and the change in a sentence."""

    rollout: Rollout
    event: str


class RolloutDriver:
    """Rollouts of one control plane; ``run`` drives them until cancelled."""

    def __init__(
        self,
        *,
        store: RolloutStore,
        fleet: Fleet,
        apps: AppRegistry,
        figures: FiguresSource,
        world_regions: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        tick_s: float = TICK_S,
        gateways: Coordinator | None = None,
        has_module: Callable[[str], bool] = lambda _sha256: False,
    ) -> None:
        self._store = store
        self._fleet = fleet
        self._apps = apps
        self._figures = figures
        self._world_regions = frozenset(world_regions)
        self._clock = clock
        self._tick_s = tick_s
        # The IoT gateways (None without --mqtt: rollouts with a gateway module are refused).
        self._gateways = None if gateways is None else GatewayMover(gateways)
        self._has_module = has_module
        self._rollouts: dict[str, Rollout] = {r.id: r for r in store.load_all()}
        # In memory only: after a restart the machine re-sends what is in flight (Resumed).
        self._wave_deployments: dict[tuple[str, int], str] = {}
        self._restore_deployments: dict[tuple[str, str], str] = {}
        self._watchers: dict[str, list[asyncio.Queue[RolloutChange | None]]] = {}

    # -- queries -----------------------------------------------------------------------------

    def get(self, rollout_id: str) -> Rollout:
        found = self._rollouts.get(rollout_id)
        if found is None:
            raise NotFoundError(kind="rollout", key=rollout_id)
        return found

    def list_rollouts(self, *, app: str = "", limit: int = 0) -> list[Rollout]:
        """Rollouts, newest first."""
        found = [r for r in reversed(self._rollouts.values()) if not app or r.spec.app == app]
        return found[:limit] if limit else found

    def active_for(self, app: str) -> Rollout | None:
        return next((r for r in self._rollouts.values() if r.spec.app == app and not r.state.terminal), None)

    def known_regions(self) -> frozenset[str]:
        return self._fleet.regions() | frozenset(self._world_regions)

    def check_regions(self, regions: Iterable[str], *, allow_empty: bool, field: str) -> None:
        """Refuse regions no node has reported and the world does not name (unless allowed)."""
        known = self.known_regions()
        unknown = sorted(set(regions) - known)
        if unknown and not allow_empty:
            raise InvalidRequestError(
                field=field,
                reason=f"unknown region {', '.join(unknown)}: no node has reported it and the world does "
                f"not name it (known: {', '.join(sorted(known)) or 'none'}); --allow-empty for a region "
                "being built",
            )

    # -- operator calls ------------------------------------------------------------------------

    def start(self, spec: RolloutSpec, *, allow_empty: bool = False) -> Rollout:
        """Start a rollout of ``spec``: one active rollout per app (and one with a gateway
        module); every wave's region known."""
        before = {}
        if spec.gateway_module:
            busy = [r for r in self._rollouts.values() if r.spec.gateway_module and not r.state.terminal]
            before = check_gateway_start(spec, self._gateways, self._has_module, busy)
        active = self.active_for(spec.app) if spec.app else None
        if active is not None:
            raise ActionRefusedError(
                rollout_id=active.id,
                state=active.state.value,
                action="start",
                reason=f"{spec.app} is being rolled out; one rollout per app at a time (abort it first)",
            )
        if spec.app:
            self._apps.get(spec.app, spec.version)  # NotFoundError for a version never registered
        regions = [region for wave in spec.waves for region in wave.regions]
        self.check_regions(regions, allow_empty=allow_empty, field="waves")
        now = self._clock()
        rollout = new_rollout(rollout_id=self._store.next_id(), spec=spec, now=now)
        versions = (
            fleetview.region_versions(self._fleet.list_nodes(), spec.app, self._deployment_app, regions)
            if spec.app
            else dict.fromkeys(regions, NOTHING)
        )
        self._rollouts[rollout.id] = rollout
        self._store.save(rollout)
        started = Started(previous_versions=versions, previous_gateway_modules=before)
        return self._apply(rollout, started, "started")

    def act(self, rollout_id: str, kind: ActionKind, *, actor: str, reason: str = "") -> Rollout:
        """An operator's pause, resume, promote, promote --all or abort, recorded with who and why."""
        return self._apply(
            self.get(rollout_id), OperatorAction(kind=kind, actor=actor, reason=reason), kind.value
        )

    async def watch(self, rollout_id: str) -> AsyncIterator[RolloutChange]:
        """The rollout now, then every change, until it ends."""
        rollout = self.get(rollout_id)
        queue: asyncio.Queue[RolloutChange | None] = asyncio.Queue(maxsize=WATCH_QUEUE_SIZE)
        self._watchers.setdefault(rollout_id, []).append(queue)
        try:
            yield RolloutChange(rollout=rollout, event=rollout.message or "now")
            while not rollout.state.terminal:
                change = await queue.get()
                if change is None:  # the watcher fell behind: give it the latest whole
                    change = RolloutChange(rollout=self.get(rollout_id), event="(changes skipped)")
                rollout = change.rollout
                yield change
        finally:
            self._watchers[rollout_id].remove(queue)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Resume what a previous run left in flight, then drive every active rollout."""
        for rollout in list(self._rollouts.values()):
            if not rollout.state.terminal:
                logger.info("rollout %s: resuming (%s)", rollout.id, rollout.state.value)
                self._apply(rollout, Resumed(), "control plane restarted: resumed")
        while True:
            for rollout in [r for r in self._rollouts.values() if not r.state.terminal]:
                try:
                    self._drive(rollout)
                except Exception:
                    logger.exception("rollout %s: driving it failed; trying again next tick", rollout.id)
            await asyncio.sleep(self._tick_s)

    def _drive(self, rollout: Rollout) -> None:
        for event in self._fleet_events(rollout):
            rollout = self._apply(rollout, event, "")
        if rollout.state in {RolloutState.BAKING, RolloutState.PAUSED} and not rollout.skip_gates:
            figures = self._gate_figures(rollout)
            if figures is not None:
                rollout = self._apply(rollout, figures, "")
        self._apply(rollout, Tick(), "")

    def _fleet_events(self, rollout: Rollout) -> list[Event]:
        events: list[Event] = []
        if rollout.state == RolloutState.DEPLOYING or (
            rollout.state == RolloutState.PAUSED and rollout.wave.deployed_at is None
        ):
            wave = rollout.current_wave
            edge = self._edge_progress(self._wave_deployments.get((rollout.id, wave)), rollout)
            gateways = None
            if rollout.spec.gateway_module and self._gateways is not None:
                gateways = self._gateways.waves.get((rollout.id, wave))
                if gateways is None:
                    edge = None  # not sent yet (or lost to a restart: the machine re-sends)
            if edge is not None and edge.nack is not None:
                events.append(Nacked(wave=wave, node_id=edge.nack[0], error=edge.nack[1]))
            elif edge is not None:
                progress = combined_progress(edge.expected, edge.acked, gateways)
                if progress.nack is not None:
                    events.append(Nacked(wave=wave, node_id=progress.nack[0], error=progress.nack[1]))
                else:
                    events.append(WaveProgress(wave=wave, expected=progress.expected, acked=progress.acked))
        if rollout.state == RolloutState.ROLLING_BACK and rollout.rollback is not None:
            done = []
            for region in rollout.rollback.pending:
                error, restored = self._restore_state(rollout, region)
                if error:
                    events.append(RestoreFailed(region=region, error=error))
                elif restored:
                    done.append(region)
            if done:
                events.append(RestoreAcked(regions=tuple(done)))
        return events

    def _edge_progress(self, deployment_id: str | None, rollout: Rollout) -> fleetview.DeployProgress | None:
        """A deployment's progress; none to wait for without an app; None when not deployed yet."""
        if not rollout.spec.app or deployment_id == "":
            return fleetview.DeployProgress(expected=(), acked=(), nack=None)
        if deployment_id is None:
            return None
        return fleetview.deploy_progress(self._fleet.deployment(deployment_id))

    def _restore_state(self, rollout: Rollout, region: str) -> tuple[str, bool]:
        """(why the region's restore failed, or ""; whether it is complete): its edge restore
        ACKed and its gateways back on their modules."""
        key = (rollout.id, region)
        edge = self._edge_progress(self._restore_deployments.get(key), rollout)
        if edge is not None and edge.nack is not None:
            return f"{edge.nack[0]}: {edge.nack[1]}", False
        gateways = None
        if rollout.spec.gateway_module and self._gateways is not None:
            gateways = self._gateways.restores.get(key)
            if gateways is None:
                return "", False
            failure = gateways.first_failure()
            if failure is not None:
                del self._gateways.restores[key]  # said once; the machine's retry sends again
                return f"gateway {failure[0]}: {failure[1]}", False
        return "", edge is not None and edge.done and (gateways is None or gateways.done)

    def _gate_figures(self, rollout: Rollout) -> GateFigures | None:
        wave = rollout.wave
        if wave.deployed_at is None:
            return None
        now = self._clock()
        spec = rollout.spec
        regions = rollout.wave_spec.regions
        figures = Figures()
        if spec.app:
            figures = self._figures.figures(
                regions=regions, app=spec.app, version=spec.version, since=wave.deployed_at, until=now
            )
        if spec.gateway_module and self._gateways is not None:
            figures = self._gateways.figures(rollout.id, rollout.current_wave, figures, regions)
        later = [region for w in spec.waves[rollout.current_wave + 1 :] for region in w.regions]
        baseline_version = fleetview.baseline_version(rollout.initial_versions, later)
        baseline = None
        if baseline_version is not None:
            baseline = self._figures.figures(
                regions=later, app=spec.app, version=baseline_version, since=wave.deployed_at, until=now
            )
        return GateFigures(wave=rollout.current_wave, figures=figures, baseline=baseline)

    # -- stepping and commands ---------------------------------------------------------------

    def _apply(self, rollout: Rollout, event: Event, label: str) -> Rollout:
        now = self._clock()
        new, commands = step(rollout, event, now)
        transitions = [command.transition for command in commands if isinstance(command, Record)]
        if new != rollout:
            self._rollouts[new.id] = new
            self._store.save(new, transitions)
        for command in commands:
            self._carry_out(new, command)
        notes = [command.message for command in commands if isinstance(command, Notify)]
        if new != rollout or label:
            self._tell(new, "; ".join(notes) or label)
        return new

    def _carry_out(self, rollout: Rollout, command: Command) -> None:
        if isinstance(command, Deploy):
            if command.app:
                deployment_id = self._fleet.deploy(
                    app_name=command.app,
                    app_version=command.version,
                    selector=common_pb2.Selector(regions=command.regions),
                )
                self._wave_deployments[(rollout.id, command.wave)] = deployment_id
                logger.info("rollout %s: wave %d deploys %s@%s (deployment %s)", rollout.id, command.wave + 1,
                            command.app, command.version, deployment_id)  # fmt: skip
            if command.gateway_module:
                self._deploy_gateways(rollout, command)
        elif isinstance(command, Restore):
            for region, version in sorted(command.versions.items()):
                self._restore(rollout, region, version)
        elif isinstance(command, Notify):
            logger.info("rollout %s: %s", rollout.id, command.message)

    def _deploy_gateways(self, rollout: Rollout, command: Deploy) -> None:
        if self._gateways is None:  # restarted without --mqtt: the wave waits for its nodes only
            logger.error("rollout %s: %s; its gateways are left as they are", rollout.id, NO_BROKER)
            return
        deadline_s = rollout.spec.progress_deadline_s
        offline = self._gateways.deploy(
            rollout.id, command.wave, command.regions, command.gateway_module, deadline_s
        )
        if offline:
            names = ", ".join(g.gateway_id for g in offline)
            note = f"gateways offline, skipped (they keep their module): {names}"
            logger.warning("rollout %s: wave %d: %s", rollout.id, command.wave + 1, note)
            self._tell(rollout, note)

    def _restore(self, rollout: Rollout, region: str, version: str) -> None:
        if rollout.spec.gateway_module and self._gateways is not None:
            before = rollout.gateway_modules_before
            self._gateways.restore(rollout.id, region, before, rollout.spec.progress_deadline_s)
        if not rollout.spec.app:
            self._restore_deployments[(rollout.id, region)] = ""  # no edge restore
            return
        if version == NOTHING:
            # Deployments assign apps; none takes one away. The region ran no version of the
            # app before, so it keeps this one: said, and counted as restored.
            logger.warning(
                "rollout %s: %s ran no %s before; it keeps %s",
                rollout.id, region, rollout.spec.app, rollout.spec.version,
            )  # fmt: skip
            self._restore_deployments[(rollout.id, region)] = ""  # nothing to wait for
            return
        deployment_id = self._fleet.deploy(
            app_name=rollout.spec.app, app_version=version, selector=common_pb2.Selector(regions=[region])
        )
        self._restore_deployments[(rollout.id, region)] = deployment_id

    def _tell(self, rollout: Rollout, event: str) -> None:
        for queue in self._watchers.get(rollout.id, []):
            change = RolloutChange(rollout=rollout, event=event)
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        queue.get_nowait()
                queue.put_nowait(None)

    def _deployment_app(self, deployment_id: str) -> tuple[str, str] | None:
        try:
            deployment = self._fleet.deployment(deployment_id)
        except NotFoundError:
            return None
        return deployment.app_name, deployment.app_version
