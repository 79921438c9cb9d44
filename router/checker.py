"""Active health checks: every node's ``/healthz``, on an interval, concurrently.

Results go to the fleet's health book (``router.health`` decides what they mean). A check
has its own deadline, so one hung node never delays the others' checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from router.fleet import Fleet
from router.health import HealthSettings

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"


async def check_node(
    session: aiohttp.ClientSession, fleet: Fleet, node_id: str, url: str, timeout_s: float
) -> None:
    try:
        async with asyncio.timeout(timeout_s), session.get(url + HEALTH_PATH) as response:
            await response.read()
            if response.status == 200:
                fleet.check_passed(node_id)
            else:
                fleet.check_failed(node_id, f"/healthz answered {response.status}")
    except TimeoutError:
        fleet.check_failed(node_id, f"/healthz did not answer within {timeout_s:g}s")
    except (aiohttp.ClientError, OSError) as exc:
        fleet.check_failed(node_id, f"{type(exc).__name__}: {exc}")


async def run_health_checks(
    session: aiohttp.ClientSession, fleet: Fleet, settings: HealthSettings, stop: asyncio.Event
) -> None:
    """Check every node each ``settings.interval_s`` until ``stop`` is set."""
    while not stop.is_set():
        entries = list(fleet.inventory.entries.values())
        if entries:
            await asyncio.gather(
                *(check_node(session, fleet, e.node_id, e.url, settings.timeout_s) for e in entries)
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.interval_s)
