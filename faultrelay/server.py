"""The fault relay's lifecycle: restore faults, start the expiry timer, then the link
listeners and the admin API last; on the way down they stop first.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from faultrelay.admin import admin_app, start_admin
from faultrelay.clock import Clock, SystemClock
from faultrelay.config import ADMIN_ADDRESS_KEY, RelayConfig
from faultrelay.controller import FaultController
from faultrelay.faults import FaultBook
from faultrelay.relay import LinkRelay
from faultrelay.state import FaultStore
from runtime.process import StopEvent, wait_for_stop
from runtime.ready import ReadyCallback

logger = logging.getLogger(__name__)

SERVICE_NAME = "faultrelay"


async def run(
    config: RelayConfig,
    *,
    ready: ReadyCallback | None = None,
    stop: StopEvent | None = None,
    clock: Clock | None = None,
) -> None:
    """Relay until ``stop`` is set (or the task is cancelled)."""
    clock = clock or SystemClock()
    book = FaultBook(link.name for link in config.links)
    relays = {
        link.name: LinkRelay(
            link,
            is_cut=lambda name: book.cuts(name, clock.monotonic()),
            connect_timeout_s=config.connect_timeout_s,
        )
        for link in config.links
    }
    controller = FaultController(
        book=book, relays=relays, store=FaultStore(config.state_file, clock), clock=clock
    )
    controller.restore()  # before any listener: a restored partition holds from the first accept
    async with asyncio.TaskGroup() as group:
        expiry = group.create_task(controller.expire_forever(), name="faultrelay-expiry")
        try:
            async with AsyncExitStack() as listening:  # started last, stopped first
                addresses: dict[str, str] = {}
                for name, relay in relays.items():
                    listening.push_async_callback(relay.close)
                    addresses[name] = await relay.start(config.host)
                admin = admin_app(controller, config.token)
                admin_url = await start_admin(listening, admin, config.host, config.admin_port)
                logger.info(
                    "fault relay up: admin %s; %s",
                    admin_url,
                    ", ".join(
                        f"{name} {addr} -> {relays[name].spec.upstream}" for name, addr in addresses.items()
                    ),
                )
                if ready is not None:
                    ready({ADMIN_ADDRESS_KEY: admin_url, **addresses})
                await wait_for_stop(stop)
                logger.info("fault relay stopping")
        finally:
            expiry.cancel()
