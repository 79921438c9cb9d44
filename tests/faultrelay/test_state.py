"""The state file: a fault in force survives a restart of the relay; an expired one does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faultrelay.clock import SystemClock
from faultrelay.errors import StateFileError
from faultrelay.faults import Fault, FaultBook, FaultRequest
from faultrelay.state import FaultStore
from tests.faultrelay.support import (
    FakeClock,
    admin_client,
    echo_round_trip,
    echo_server,
    free_port,
    is_reset,
    link_view,
    partition,
    relay_config,
    relay_in_process,
    state_path,
)


async def test_a_partition_holds_across_a_restart_on_the_same_port(tmp_path: Path) -> None:
    state = state_path(tmp_path)
    async with echo_server() as echo:
        config = relay_config({"cp": f"{free_port()}:127.0.0.1:{echo.port}"}, state_file=state)
        async with relay_in_process(config) as relay, admin_client(relay) as admin:
            await partition(admin, "cp", for_s=60, reason="chaos partition")
        saved = json.loads(state.read_text())
        assert [entry["link"] for entry in saved["faults"]] == ["cp"]

        async with relay_in_process(config) as relay, admin_client(relay) as admin:
            assert await is_reset(relay.port("cp"))
            fault = (await link_view(admin, "cp"))["fault"]
            assert fault["reason"] == "chaos partition"
            assert 55 < fault["remaining_s"] <= 60
            async with admin.delete("/links/cp/fault") as response:
                assert response.status == 200
        assert json.loads(state.read_text())["faults"] == []

        async with relay_in_process(config) as relay:
            assert await echo_round_trip(relay.port("cp"), b"healed") == b"healed"


async def test_a_fault_that_ran_out_while_the_relay_was_down_is_gone(tmp_path: Path) -> None:
    state = state_path(tmp_path)
    clock = FakeClock()
    async with echo_server() as echo:
        config = relay_config({"cp": f"0:127.0.0.1:{echo.port}"}, state_file=state)
        async with relay_in_process(config, clock=clock) as relay, admin_client(relay) as admin:
            await partition(admin, "cp", for_s=10)
        clock.advance(10)  # the wall clock moves on while nothing runs
        async with relay_in_process(config, clock=clock) as relay:
            assert await echo_round_trip(relay.port("cp"), b"free") == b"free"
        assert json.loads(state.read_text())["faults"] == []


def test_wall_clock_expiry_is_kept_and_converted(tmp_path: Path) -> None:
    before, after = FakeClock(monotonic=50.0), FakeClock(monotonic=9.0, wall=1_700_000_000.0 + 4.0)
    book = FaultBook(["a", "b", "c", "d"])
    book.set(Fault.starting("a", FaultRequest(kind="partition", for_s=30), 50.0))
    book.set(Fault.starting("b", FaultRequest(kind="partition"), 50.0))
    book.set(Fault.starting("c", FaultRequest(kind="partition", for_s=3), 50.0))
    book.set(Fault.starting("d", FaultRequest(kind="partition"), 50.0))
    FaultStore(state_path(tmp_path), before).save(book)
    entries = {entry["link"]: entry for entry in json.loads(state_path(tmp_path).read_text())["faults"]}
    assert entries["a"]["expires_at"] == pytest.approx(1_700_000_030.0)
    assert entries["b"]["expires_at"] is None

    # 4 s later, on a new process's monotonic clock; the new relay no longer carries link d.
    restarted = FaultBook(["a", "b", "c"])
    outcome = FaultStore(state_path(tmp_path), after).load(restarted)
    assert outcome.expired == ("c",)
    assert outcome.unknown == ("d",)
    assert set(restarted.faults()) == {"a", "b"}
    assert restarted.faults()["a"].expires_at == pytest.approx(9.0 + 26.0)
    assert restarted.faults()["b"].expires_at is None


@pytest.mark.parametrize(
    "text",
    ["{", "[]", '{"version": 2, "faults": []}', '{"version": 1, "faults": [{"link": "a", "kind": "x"}]}'],
)
def test_a_damaged_state_file_is_refused_clearly(tmp_path: Path, text: str) -> None:
    path = state_path(tmp_path)
    path.write_text(text)
    with pytest.raises(StateFileError) as caught:
        FaultStore(path, SystemClock()).load(FaultBook(["a"]))
    assert str(caught.value).startswith(f"state file {path}: ")
