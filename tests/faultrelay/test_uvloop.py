"""The relay's transport handling on uvloop, the loop its process runs on (``fast_loop``).

The other tests run on asyncio's own loop (pytest-asyncio's); the scenarios here run the
same test bodies again on a uvloop loop, whose transports differ in the details that the
relay leans on (pausing, half-close, abort, the socket behind a transport).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from tests.faultrelay import test_partition, test_relay
from tests.faultrelay.support import echo_server, relay_config, relay_in_process

Scenario = Callable[[], Coroutine[Any, Any, None]]


async def partition_resets_open_connections() -> None:
    async with echo_server() as echo:
        links = {
            "cp-ap-northeast-2": f"0:127.0.0.1:{echo.port}",
            "cp-eu-central-1": f"0:127.0.0.1:{echo.port}",
        }
        async with relay_in_process(relay_config(links)) as relay:
            await test_partition.test_a_partition_resets_open_connections_at_once_and_refuses_new_ones(
                relay, echo
            )


SCENARIOS: tuple[Scenario, ...] = (
    test_relay.test_bytes_go_both_ways_and_half_close_passes_through,
    test_relay.test_a_few_megabytes_both_ways_arrive_intact,
    test_relay.test_a_stalled_upstream_stops_the_relay_reading_from_the_client,
    test_relay.test_an_unreachable_upstream_closes_the_client_promptly,
    test_relay.test_an_upstream_close_is_passed_on_and_the_pipe_ends,
    partition_resets_open_connections,
)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.__name__ for scenario in SCENARIOS])
def test_on_uvloop(scenario: Scenario) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
