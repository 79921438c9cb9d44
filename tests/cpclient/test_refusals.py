"""Issue 24 follow-up: a node the control plane refuses for good (PERMISSION_DENIED,
UNAUTHENTICATED: a credential that may not be this node) says so at ERROR, once per refusal
text, with what to fix, and retries at the slowest pace; a dropped connection stays an INFO
line with the usual back-off."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, SessionSettings
from cpclient.backoff import Backoff
from cpclient.reconnect import PERMANENT_REFUSALS, plan_reconnect
from tests.control_plane.support import control_plane_in_process

NODE = NodeIdentity(node_id="eu-1-a", region="eu-1")
BACKOFF = Backoff(initial_s=0.2, maximum_s=10.0, jitter=0.5)
codes = st.sampled_from([None, *grpc.StatusCode])
errors = st.sampled_from(["PERMISSION_DENIED: bound to node 'b'", "UNAVAILABLE: connect failed", "x"])


@given(code=codes, error=errors, attempt=st.integers(0, 100), told=st.frozensets(errors), seed=st.integers())
def test_a_refusal_waits_the_maximum_and_is_an_error_once(
    code: grpc.StatusCode | None, error: str, attempt: int, told: frozenset[str], seed: int
) -> None:
    plan = plan_reconnect(
        identity=NODE,
        code=code,
        error=error,
        attempt=attempt,
        backoff=BACKOFF,
        rng=random.Random(seed),
        told=told,
    )
    assert 0 < plan.delay_s <= BACKOFF.maximum_s
    assert error in plan.message
    if code in PERMANENT_REFUSALS:
        assert plan.refused
        # At once at the maximum interval (less its jitter), whatever the attempt.
        assert plan.delay_s >= BACKOFF.maximum_s * (1 - BACKOFF.jitter)
        assert plan.level == (logging.DEBUG if error in told else logging.ERROR)
        assert "check --token / --node-id / --region" in plan.message
        assert "'eu-1-a'" in plan.message
        assert "'eu-1'" in plan.message
    else:
        assert not plan.refused
        assert plan.level == logging.INFO
        assert plan.delay_s == pytest.approx(BACKOFF.delay(attempt, random.Random(seed)))


async def test_a_refused_node_logs_one_error_and_keeps_retrying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cpclient.session")
    async with control_plane_in_process(tmp_path / "cp") as live:
        # A viewer's token is no node credential: the control plane refuses it on every try.
        session = NodeSession(
            SessionSettings(
                target=live.address,
                token=live.tokens["viewer"],
                backoff=Backoff(initial_s=0.01, maximum_s=0.05),
            ),
            NodeIdentity(node_id="eu-1-a", region="eu-1"),
            apply=lambda assignment, modules: None,
            store=MemoryModuleStore(),
        )
        task = asyncio.create_task(session.run(), name="test-node:refused")
        try:
            async with asyncio.timeout(20):
                while sum(r.name == "cpclient.session" for r in caplog.records) < 3:  # noqa: ASYNC110 - log records wake nothing
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.wait([task])
    lines = [record for record in caplog.records if record.name == "cpclient.session"]
    assert session.stats.last_error.startswith(("PERMISSION_DENIED", "UNAUTHENTICATED"))
    assert not session.connected
    assert [record.levelno for record in lines[:3]] == [logging.ERROR, logging.DEBUG, logging.DEBUG]
    assert "check --token / --node-id / --region" in lines[0].getMessage()
    assert session.stats.last_error in lines[0].getMessage()
