"""The admin API's contract: bearer auth, validation errors, addresses reported when ready."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.faultrelay.support import (
    TOKEN,
    LiveRelay,
    admin_client,
    free_port,
    relay_config,
    relay_in_process,
)

LINKS = ("cp-ap-northeast-2", "cp-sa-east-1")


@pytest.fixture
async def relay() -> AsyncIterator[LiveRelay]:
    upstream = f"0:127.0.0.1:{free_port()}"
    async with relay_in_process(relay_config(dict.fromkeys(LINKS, upstream))) as running:
        yield running


async def test_ready_addresses_name_the_admin_api_and_every_link(relay: LiveRelay) -> None:
    assert set(relay.addresses) == {"admin", *LINKS}
    assert relay.admin.startswith("http://127.0.0.1:")
    for link in LINKS:
        host, port = relay.addresses[link].rsplit(":", 1)
        assert host == "127.0.0.1"
        assert int(port) > 0


@pytest.mark.parametrize("token", ["", "wrong", TOKEN + "x"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/links"), ("PUT", "/links/cp-sa-east-1/fault"), ("DELETE", "/faults"), ("GET", "/nowhere")],
)
async def test_every_admin_request_needs_the_token(
    relay: LiveRelay, token: str, method: str, path: str
) -> None:
    async with admin_client(relay, token=token) as admin, admin.request(method, path, json={}) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert (await response.json())["error"] == "unauthorized"


async def test_the_token_must_be_a_bearer_token(relay: LiveRelay) -> None:
    async with (
        aiohttp.ClientSession(base_url=relay.admin) as session,
        session.get("/links", headers={"Authorization": TOKEN}) as response,
    ):
        assert response.status == 401


async def test_healthz_needs_no_token(relay: LiveRelay) -> None:
    async with admin_client(relay, token="") as admin, admin.get("/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_links_lists_each_link(relay: LiveRelay) -> None:
    async with admin_client(relay) as admin, admin.get("/links") as response:
        assert response.status == 200
        views = await response.json()
    assert [view["name"] for view in views] == list(LINKS)
    view = views[0]
    assert view["listen"] == relay.addresses["cp-ap-northeast-2"]
    assert view["upstream"].startswith("127.0.0.1:")
    assert {
        key: view[key] for key in ("active_connections", "bytes_to_upstream", "bytes_to_client", "fault")
    } == {
        "active_connections": 0,
        "bytes_to_upstream": 0,
        "bytes_to_client": 0,
        "fault": None,
    }


async def test_an_unknown_link_is_a_404_naming_the_known_ones(relay: LiveRelay) -> None:
    async with admin_client(relay) as admin:
        for method in ("PUT", "DELETE"):
            async with admin.request(method, "/links/cp-mars/fault", json={"kind": "partition"}) as response:
                assert response.status == 404
                answer = await response.json()
            assert answer["error"] == "unknown_link"
            assert (
                answer["message"] == "no link named 'cp-mars'; known links: cp-ap-northeast-2, cp-sa-east-1"
            )
            assert answer["known"] == list(LINKS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not valid JSON"),
        (b'{"kind": "latency"}', "kind must be one of partition (got 'latency')"),
        (b'{"kind": "partition", "for_s": -5}', "for_s must be a positive number of seconds (got -5)"),
        (b'{"kind": "partition", "for_s": NaN}', "NaN is not a JSON value"),
    ],
)
async def test_bad_fault_requests_are_400_saying_what_was_wrong(
    relay: LiveRelay, body: bytes, message: str
) -> None:
    async with (
        admin_client(relay) as admin,
        admin.put(
            "/links/cp-sa-east-1/fault", data=body, headers={"Content-Type": "application/json"}
        ) as response,
    ):
        assert response.status == 400
        answer = await response.json()
    assert answer["error"] == "bad_request"
    assert message in answer["message"]
