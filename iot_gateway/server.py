"""``run(config)``: the gateways of one process, the shared module library, ``/metrics``.

Listeners start last and stop first: the HTTP endpoint is bound (and the ready report
written) once every gateway has its module; on stop every gateway publishes its retained
"stopped" status before the process ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import AsyncExitStack

from aiohttp import web

from cpclient.backoff import Backoff
from cpclient.channel import tls_settings
from iot_gateway.config import GatewayConfig
from iot_gateway.gateway import Gateway
from iot_gateway.metrics import GatewayMetrics, metrics_app
from iot_gateway.modules import ModuleLibrary
from iot_gateway.mqtt import GatewaySession
from iot_gateway.telemetry import start_telemetry
from runtime.process import StopEvent, wait_for_stop
from runtime.ready import ReadyCallback
from wasm_host import EngineConfig, ExecutorConfig, Limits, WasmEngine, WasmExecutor

logger = logging.getLogger(__name__)
SERVICE_NAME = "iot-gateway"
STOP_GRACE_S = 10.0


async def run(
    config: GatewayConfig, *, ready: ReadyCallback | None = None, stop: StopEvent | None = None
) -> None:
    stop = stop or asyncio.Event()
    metrics = GatewayMetrics()
    async with AsyncExitStack() as stack:
        engine = WasmEngine(EngineConfig(pool_total_instances=64))
        stack.callback(engine.close)
        executor = WasmExecutor(ExecutorConfig(max_workers=2))
        stack.callback(executor.close)
        library = ModuleLibrary(
            engine, state_dir=config.state_dir, control_plane=config.control_plane, token=config.token,
            tls=tls_settings(config.control_plane_tls),
            limits=Limits(memory_bytes=config.module_memory_bytes, timeout_s=config.module_timeout_s,
                          max_output_bytes=48 * 1024),
            env={"WARNING_ABOVE_C": f"{config.warning_above_c:g}"}, on_download=metrics.downloads.inc,
            trusted=config.trusted_keys,
        )  # fmt: skip
        stack.push_async_callback(library.close)
        telemetry = await start_telemetry(
            stack, instance=config.gateway_id, region=config.region, control_plane=config.control_plane,
            token=config.token, control_plane_tls=config.control_plane_tls, sample_ratio=1.0,
        )  # fmt: skip
        configured = await asyncio.to_thread(library.load_file, config.module)
        start_ts, started = time.time(), time.monotonic()
        rng = random.Random(config.seed)  # noqa: S311 - back-off jitter, not secrets
        sessions = [
            GatewaySession(
                Gateway(config=config, gateway_id=gid, library=library, executor=executor, metrics=metrics,
                        configured=configured, start_ts=start_ts, started=started),
                link=config.link, metrics=metrics, telemetry=telemetry, backoff=Backoff(), rng=rng,
            )
            for gid in config.gateway_ids()
        ]  # fmt: skip
        metrics.gateways.set(len(sessions))
        runner = web.AppRunner(metrics_app(metrics), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, config.http_host, config.http_port)
        await site.start()
        port = runner.addresses[0][1]
        logger.info("%d gateway(s) in %s; metrics on http://%s:%d/metrics", len(sessions), config.region,
                    config.http_host, port)  # fmt: skip
        if ready is not None:
            ready({"http": f"http://{config.http_host}:{port}"})
        gateways_stop = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            for session in sessions:
                group.create_task(session.run(gateways_stop), name=f"gateway-{session.gateway.gateway_id}")
            await wait_for_stop(stop)
            await runner.cleanup()  # the listener stops first
            gateways_stop.set()
