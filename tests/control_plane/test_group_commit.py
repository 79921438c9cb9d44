"""Group commit: what is queued in one window is committed in one transaction and takes effect
only after it; a failed commit applies nothing. Then the fleet's ACKs and NACKs through it,
on a real database: an answer counts only once its row is stored, and an answer that cannot
be stored ends the node's session instead of counting."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import TypeAlias

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.apps import AppRegistry
from control_plane.blobs import BlobStore
from control_plane.compile_check import ModuleValidator
from control_plane.db import Database
from control_plane.fleet import Fleet
from control_plane.fleet_answers import STORE_FAILED
from control_plane.group_commit import GroupCommit
from control_plane.modules import ModuleRegistry
from control_plane.sessions import Session
from protos.edgecdn.v1 import common_pb2, deployments_pb2, nodes_pb2
from tests.control_plane.support import WAT_WAGI, app_version, sha, wasm

Progress = deployments_pb2.NodeProgress
State: TypeAlias = "Progress.State.ValueType"


class Ledger:
    """What a GroupCommit did, in order: ("commit" | "apply" | "failed", batch)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[tuple[str, list[int]]] = []

    def commit(self, batch: list[int]) -> None:
        self.events.append(("commit", list(batch)))
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")

    def apply(self, batch: list[int]) -> None:
        self.events.append(("apply", list(batch)))

    def failed(self, batch: list[int], error: Exception) -> None:
        assert isinstance(error, sqlite3.OperationalError)
        self.events.append(("failed", list(batch)))


def group(ledger: Ledger, window_s: float = 0.0) -> GroupCommit[int]:
    return GroupCommit(commit=ledger.commit, apply=ledger.apply, on_failed=ledger.failed, window_s=window_s)


async def test_items_of_one_pass_are_one_commit_then_applied() -> None:
    ledger = Ledger()
    commits = group(ledger)
    for item in range(5):
        commits.add(item)
    assert ledger.events == []  # nothing counts before the commit
    assert len(commits) == 5
    await asyncio.sleep(0)  # the loop's next pass
    assert ledger.events == [("commit", [0, 1, 2, 3, 4]), ("apply", [0, 1, 2, 3, 4])]
    commits.add(5)
    await asyncio.sleep(0)
    assert ledger.events[2:] == [("commit", [5]), ("apply", [5])]
    assert (commits.batches, commits.largest_batch) == (2, 5)


async def test_a_window_gathers_items_from_several_passes() -> None:
    ledger = Ledger()
    commits = group(ledger, window_s=0.05)
    commits.add(1)
    await asyncio.sleep(0)
    commits.add(2)
    await asyncio.sleep(0)
    assert ledger.events == []
    await asyncio.sleep(0.1)
    assert ledger.events == [("commit", [1, 2]), ("apply", [1, 2])]


async def test_a_failed_commit_applies_nothing() -> None:
    ledger = Ledger(fail=True)
    commits = group(ledger)
    commits.add(1)
    commits.add(2)
    commits.flush()  # at once, as at shutdown; the scheduled pass then finds nothing
    await asyncio.sleep(0)
    assert ledger.events == [("commit", [1, 2]), ("failed", [1, 2])]
    assert commits.batches == 0


@given(passes=st.lists(st.lists(st.integers(), max_size=5), max_size=6))
def test_every_item_is_applied_once_in_order_after_its_commit(passes: list[list[int]]) -> None:
    async def run() -> list[tuple[str, list[int]]]:
        ledger = Ledger()
        commits = group(ledger)
        for items in passes:
            for item in items:
                commits.add(item)
            await asyncio.sleep(0)
        return ledger.events

    events = asyncio.run(run())
    committed = [item for kind, batch in events if kind == "commit" for item in batch]
    applied = [item for kind, batch in events if kind == "apply" for item in batch]
    assert committed == applied == [item for items in passes for item in items]
    for position, (kind, batch) in enumerate(events):  # each batch: its commit, then its apply
        assert kind == ("commit" if position % 2 == 0 else "apply")
        assert batch == events[position - position % 2][1]


# -- the fleet's answers ---------------------------------------------------------------------

REGION = "eu-west-1"


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[tuple[Fleet, Database]]:
    with closing(Database(tmp_path / "cp.sqlite3")) as db, ModuleValidator() as validator:
        modules = ModuleRegistry(db, BlobStore(tmp_path / "modules"), validator)
        data = wasm(WAT_WAGI)
        await modules.add(name="main", sha256=sha(data), abi=common_pb2.ABI_WAGI, data=data)
        apps = AppRegistry(db, modules)
        await apps.register(app_version("hello", "1.0", {"main": sha(data)}))
        yield Fleet(db, apps, heartbeat_interval_s=1.0, missed_allowed=3), db


async def assigned(fleet: Fleet, node_id: str) -> tuple[Session, nodes_pb2.Assignment, str]:
    """A connected node, a deployment to its region, and the assignment its session sends."""
    session = fleet.open_session(nodes_pb2.NodeHello(node_id=node_id, region=REGION, agent_version="t"))
    deployment_id = fleet.deploy(
        app_name="hello", app_version="1.0", selector=common_pb2.Selector(regions=[REGION])
    )
    messages = [await session.next_message(), await session.next_message()]  # params, then it
    assert messages[1] is not None
    assert messages[1].HasField("assignment")
    return session, messages[1].assignment, deployment_id


def states(fleet: Fleet, db: Database, deployment_id: str) -> tuple[list[State], list[str]]:
    """The node states the deployment shows, and those the database holds."""
    shown = [n.state for n in fleet.deployment(deployment_id).nodes]
    return shown, [p.state for p in db.deployment_progress(int(deployment_id))]


async def test_an_ack_counts_once_it_is_stored(fleet: tuple[Fleet, Database]) -> None:
    nodes, db = fleet
    session, assignment, deployment_id = await assigned(nodes, "n1")
    ack = nodes_pb2.AssignmentAck(version=assignment.version, nonce=assignment.nonce)
    nodes.handle(session, nodes_pb2.NodeMessage(ack=ack))
    assert states(nodes, db, deployment_id) == ([Progress.STATE_PENDING], ["pending"])
    nodes.flush_answers()
    assert states(nodes, db, deployment_id) == ([Progress.STATE_ACKED], ["acked"])
    (stored,) = db.list_nodes()
    assert (stored.assignment_version, stored.app_name, stored.app_version) == (
        assignment.version,
        "hello",
        "1.0",
    )


async def test_answers_in_one_window_share_a_commit(fleet: tuple[Fleet, Database]) -> None:
    nodes, db = fleet
    first, first_assignment, _ = await assigned(nodes, "n1")
    second = nodes.open_session(nodes_pb2.NodeHello(node_id="n2", region=REGION, agent_version="t"))
    deployment_id = nodes.deploy(
        app_name="hello", app_version="1.0", selector=common_pb2.Selector(regions=[REGION])
    )
    assignments = {}
    for node_id, session in (("n1", first), ("n2", second)):
        while (message := await session.next_message()) is not None and not message.HasField("assignment"):
            pass
        assert message is not None
        assignments[node_id] = message.assignment
    assert first_assignment.version != assignments["n1"].version  # the newer deployment replaced it
    nodes.handle(first, nodes_pb2.NodeMessage(ack=nodes_pb2.AssignmentAck(
        version=assignments["n1"].version, nonce=assignments["n1"].nonce)))  # fmt: skip
    nack = nodes_pb2.AssignmentNack(
        version="", rejected_version=assignments["n2"].version, nonce=assignments["n2"].nonce,
        error=common_pb2.ErrorDetail(code="apply_failed", message="no"),
    )  # fmt: skip
    nodes.handle(second, nodes_pb2.NodeMessage(nack=nack))
    await asyncio.sleep(0.1)  # past the commit window
    assert states(nodes, db, deployment_id) == (
        [Progress.STATE_ACKED, Progress.STATE_NACKED],
        ["acked", "nacked"],
    )
    assert nodes.answer_commits == 1  # one transaction for both


async def test_an_answer_that_cannot_be_stored_does_not_count(fleet: tuple[Fleet, Database]) -> None:
    nodes, db = fleet
    session, assignment, deployment_id = await assigned(nodes, "n1")
    ack = nodes_pb2.AssignmentAck(version=assignment.version, nonce=assignment.nonce)
    nodes.handle(session, nodes_pb2.NodeMessage(ack=ack))
    db.close()  # the store fails: every write raises
    nodes.flush_answers()
    assert [n.state for n in nodes.deployment(deployment_id).nodes] == [Progress.STATE_PENDING]
    # The node is told to reconnect; its hello then says what it runs, and that counts.
    assert session.closed
    assert session.close_reason.startswith(STORE_FAILED)
