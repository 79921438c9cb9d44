"""One simulated gateway: its sensors, its reading buffer, its module and OTA state.

The MQTT adapter (``mqtt.py``) drives it: ``take_samples`` from the sampler task,
``next_batch``/``batch_done`` from the publisher, ``update`` and ``set_interval`` from
commands. Readings wait in a bounded buffer until a batch of them has been run through the
module and published, so readings taken while the broker is away are sent when it is back.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from iot_gateway import ota
from iot_gateway.config import GatewayConfig
from iot_gateway.errors import BatchError, ModuleRefusedError
from iot_gateway.metrics import GatewayMetrics
from iot_gateway.modules import LoadedModule, ModuleLibrary
from iot_gateway.pipeline import alerts_of, batch_body, run_batch
from iot_gateway.sensors import Reading, SensorModel, due_samples, sample
from wasm_host import WasmExecutor

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    readings: tuple[Reading, ...]
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchOutcome:
    """What to publish for one batch: the module's result and the alerts it raised."""

    number: int
    module: LoadedModule
    result: dict[str, Any]
    alerts: list[tuple[str, float, int]]


class Gateway:
    def __init__(
        self,
        *,
        config: GatewayConfig,
        gateway_id: str,
        library: ModuleLibrary,
        executor: WasmExecutor,
        metrics: GatewayMetrics,
        configured: LoadedModule,
        start_ts: float,
        started: float,
    ) -> None:
        self.config = config
        self.gateway_id = gateway_id
        self.region = config.region
        self._library = library
        self._executor = executor
        self._metrics = metrics
        self.start_ts = start_ts
        self.started = started  # monotonic clock at start_ts
        self.model = SensorModel(
            seed=config.seed, gateway_id=gateway_id, region=config.region, sensors=config.sensors,
            interval_s=config.interval_s, heat_wave=config.heat_wave,
        )  # fmt: skip
        self.taken = 0  # samples of self.model taken so far
        self.pending: deque[Reading] = deque()
        self.readings_total = 0
        self.batches_total = 0
        self.alerts_total = 0
        self.module_errors_total = 0
        self.dropped_total = 0
        self._last_body: bytes | None = None
        self.module = self._startup_module(configured)
        self.ota = ota.initial(self.module.digest)
        self._known = {self.module.digest: self.module}

    def _startup_module(self, configured: LoadedModule) -> LoadedModule:
        kept = self._library.last_good(self.gateway_id)
        loaded = self._library.load_kept(kept[0], name=kept[1]) if kept is not None else None
        digest = ota.startup_module(
            configured=configured.digest, on_disk=kept[0] if kept else None, on_disk_loads=loaded is not None
        )
        if loaded is not None and digest == loaded.digest:
            logger.info("gateway %s runs its last good module %s", self.gateway_id, digest[:12])
            return loaded
        self._library.remember(self.gateway_id, configured)
        return configured

    # -- sampling ---------------------------------------------------------------------

    def take_samples(self, now: float) -> int:
        """Take every sample due by monotonic time ``now``; how many readings wait."""
        due = due_samples(self.model, now - self.started)
        cap = self.config.buffer_readings
        while self.taken < due:
            for reading in sample(self.model, self.taken, start_ts=self.start_ts):
                if len(self.pending) >= cap:
                    self.pending.popleft()  # the oldest go first: recent readings matter more
                    self.dropped_total += 1
                    self._metrics.readings_dropped.inc()
                self.pending.append(reading)
            self.taken += 1
            self.readings_total += len(self.model.sensors)
            self._metrics.readings.inc(len(self.model.sensors))
        return len(self.pending)

    def next_sample_at(self) -> float:
        """Monotonic time of the next sample."""
        return self.started + self.model.offset_s + self.taken * self.model.interval_s

    def set_interval(self, interval_s: float) -> None:
        self.model = self.model.continued(interval_s=interval_s, after=self.taken)
        self.taken = 0

    @property
    def batch_readings(self) -> int:
        return self.config.batch * len(self.model.sensors)

    def next_batch(self) -> Batch | None:
        size = self.batch_readings
        if len(self.pending) < size:
            return None
        readings = tuple(self.pending[i] for i in range(size))
        return Batch(readings=readings, body=batch_body(readings))

    def batch_done(self, batch: Batch) -> None:
        """Forget a batch's readings (published, or dropped because the module failed it)."""
        for reading in batch.readings:
            if self.pending and self.pending[0] is reading:
                self.pending.popleft()

    # -- the module -------------------------------------------------------------------

    async def run(self, batch: Batch) -> BatchOutcome | None:
        """Run ``batch`` through the module; None when it failed (see ``last_error``)."""
        module = self.module
        try:
            result = await run_batch(self._executor, module.handler, batch.body)
        except BatchError as exc:
            self.module_errors_total += 1
            self._metrics.module_errors.labels(exc.reason).inc()
            on_probation = self.ota.on_probation
            self._apply(ota.BatchRan(error=f"{exc.reason}: {exc.detail}"))
            if not on_probation:
                # A proven module failing on this batch would fail on it again: drop it.
                self.batch_done(batch)
            return None
        self._apply(ota.BatchRan())
        self._last_body = batch.body
        self.batches_total += 1
        self._metrics.batches.inc()
        alerts = alerts_of(result, self.config.warning_above_c)
        self.alerts_total += len(alerts)
        self._metrics.alerts.inc(len(alerts))
        return BatchOutcome(number=self.batches_total, module=module, result=result, alerts=alerts)

    async def update(self, digest: str) -> tuple[bool, str]:
        """Fetch, verify, compile and trial ``digest``, then switch to it on probation."""
        if digest == self.module.digest:
            return True, f"already running {digest[:12]}"
        try:
            candidate = await self._library.fetch(digest)
            if self._last_body is not None:
                await run_batch(self._executor, candidate.handler, self._last_body)
        except ModuleRefusedError as exc:
            self._metrics.refused(exc.reason, exc.detail)
            self._apply(ota.Refused(digest=digest, reason=f"{exc.reason}: {exc.detail}"))
            return False, f"module {digest[:12]} refused ({exc.reason}): {exc.detail}"
        except BatchError as exc:
            self._metrics.refused("trial_failed", exc.detail)
            self._apply(
                ota.Refused(digest=digest, reason=f"trial on the last batch: {exc.reason}: {exc.detail}")
            )
            return (
                False,
                f"module {digest[:12]} failed its trial on the last batch ({exc.reason}): {exc.detail}",
            )
        self._known[candidate.digest] = candidate
        self._apply(ota.Adopted(digest=candidate.digest))
        probation = f", on probation for {self.config.probation} batches" if self.config.probation else ""
        return True, f"running {digest[:12]}{probation}"

    def _apply(self, event: ota.Event) -> None:
        self.ota, effects = ota.step(self.ota, event, probation=self.config.probation)
        for effect in effects:
            module = self._known[effect.digest]
            if isinstance(effect, ota.Switch):
                self.module = module  # atomic: the next batch runs the new module
                if effect.why == "rollback":
                    self._metrics.rollbacks.inc()
                    logger.warning("gateway %s rolled back: %s", self.gateway_id, self.ota.last_error)
            else:
                self._library.remember(self.gateway_id, module)

    # -- presence ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "gateway_id": self.gateway_id,
            "region": self.region,
            "online": True,
            "module_sha256": self.module.digest,
            "module_name": self.module.name,
            "module_probation_left": self.ota.probation_left,
            "sensors": list(self.model.sensors),
            "interval_s": self.model.interval_s,
            "batch": self.config.batch,
            "readings_total": self.readings_total,
            "readings_buffered": len(self.pending),
            "readings_dropped_total": self.dropped_total,
            "batches_total": self.batches_total,
            "alerts_total": self.alerts_total,
            "module_errors_total": self.module_errors_total,
            "rollbacks_total": self.ota.rollbacks_total,
            "last_error": self.ota.last_error,
            "labels": dict(self.config.labels),
            "ts": time.time(),
        }

    def offline(self, reason: str) -> dict[str, Any]:
        return {"gateway_id": self.gateway_id, "region": self.region, "online": False, "reason": reason,
                "labels": dict(self.config.labels), "ts": time.time()}  # fmt: skip
