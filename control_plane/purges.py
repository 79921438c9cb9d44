"""Cache purges from the control plane: the request rule, the wait for nodes, the gRPC adapter.

``validate`` is the one rule for what may be purged (pure, tested directly). ``PurgeBook``
sends a ``CachePurge`` to every selected node with an open session and collects their
``PurgeDone`` (``Fleet.on_purge_done``) until all answered or the timeout ran out; nodes
that did not answer are reported late, per region.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import grpc

from control_plane.fleet import Fleet
from control_plane.purge_log import PurgeLog, selects
from control_plane.sessions import Session
from httpcache.model import PurgeSelector
from httpcache.policy import primary_key_of_url
from protos.edgecdn.v1 import cache_pb2, cache_pb2_grpc, common_pb2, nodes_pb2

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 60.0
MAX_ITEMS = 256  # urls + prefixes + tags in one purge
MAX_ITEM_CHARS = 2048


class PurgeRequestError(ValueError):
    """The request is refused (INVALID_ARGUMENT) for the reason in its message."""


def _url_key(url: str) -> str:
    if url.startswith("/"):
        return primary_key_of_url(url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise PurgeRequestError(f"url {url!r}: give a path starting with '/' or an http(s) URL")
    return primary_key_of_url(url)


def _printable(value: str) -> bool:
    return all(ch.isprintable() and not ch.isspace() for ch in value)


def validate(request: cache_pb2.PurgeCacheRequest) -> PurgeSelector:
    """The selector the nodes purge with; PurgeRequestError when the request is refused."""
    items = [*request.urls, *request.path_prefixes, *request.tags]
    if not items and not request.everything:
        raise PurgeRequestError("nothing to purge: give urls, path_prefixes, tags or everything")
    if len(items) > MAX_ITEMS:
        raise PurgeRequestError(f"too many urls/prefixes/tags ({len(items)}); at most {MAX_ITEMS}")
    for item in items:
        if len(item) > MAX_ITEM_CHARS:
            raise PurgeRequestError(f"{item[:40]!r}...: longer than {MAX_ITEM_CHARS} characters")
        if not _printable(item):
            raise PurgeRequestError(f"{item!r}: whitespace or control characters")
    for prefix in request.path_prefixes:
        if not prefix.startswith("/"):
            raise PurgeRequestError(f"path prefix {prefix!r} must start with '/'")
    for tag in request.tags:
        if not tag:
            raise PurgeRequestError("empty tag")
    if request.timeout_seconds < 0 or request.timeout_seconds > MAX_TIMEOUT_S:
        raise PurgeRequestError(f"timeout_seconds must be within 0..{MAX_TIMEOUT_S:g}")
    return PurgeSelector(
        urls=tuple(dict.fromkeys(_url_key(url) for url in request.urls)),
        prefixes=tuple(dict.fromkeys(request.path_prefixes)),
        tags=tuple(dict.fromkeys(request.tags)),
        everything=request.everything,
    )


@dataclass(slots=True)
class _Pending:
    regions: dict[str, str]  # node id -> region, of the nodes it went to
    done: dict[str, int] = field(default_factory=dict)  # node id -> entries removed
    complete: asyncio.Event = field(default_factory=asyncio.Event)


def report(pending: _Pending) -> list[cache_pb2.RegionPurgeReport]:
    """Per region (sorted): nodes targeted and done, entries removed, late node ids."""
    out: dict[str, cache_pb2.RegionPurgeReport] = {}
    for node_id, region in sorted(pending.regions.items()):
        row = out.setdefault(region, cache_pb2.RegionPurgeReport(region=region))
        row.nodes_targeted += 1
        if node_id in pending.done:
            row.nodes_done += 1
            row.entries_removed += pending.done[node_id]
        else:
            row.late_node_ids.append(node_id)
    return [out[region] for region in sorted(out)]


class PurgeBook:
    """Purges in flight; ``done`` is wired as the fleet's ``on_purge_done``. With a ``log``,
    every purge is logged first and a node's new session gets the purges it missed."""

    def __init__(self, fleet: Fleet, log: PurgeLog | None = None) -> None:
        self._fleet = fleet
        self._log = log
        self._pending: dict[str, _Pending] = {}
        fleet.on_purge_done = self.done
        if log is not None:
            fleet.newest_purge = lambda: log.bounds()[1]
            fleet.on_session_open = self.replay

    def replay(self, hello: nodes_pb2.NodeHello, session: Session) -> None:
        """Queue on a node's new session the purges it missed while away (PurgeLog.missed)."""
        assert self._log is not None
        missed = self._log.missed(hello)
        for purge in missed:
            session.push_purge(purge)
        if missed:
            logger.info("node %s: %d purges replayed", hello.node_id, len(missed))

    def done(self, node_id: str, message: nodes_pb2.PurgeDone) -> None:
        pending = self._pending.get(message.purge_id)
        # A late or unknown answer (or one from a node it never went to) changes nothing.
        if pending is None or node_id not in pending.regions or node_id in pending.done:
            return
        pending.done[node_id] = message.entries_removed
        if len(pending.done) == len(pending.regions):
            pending.complete.set()

    async def purge(
        self, selector: PurgeSelector, *, target: common_pb2.Selector, soft: bool, timeout_s: float
    ) -> cache_pb2.PurgeCacheResponse:
        purge_id = uuid.uuid4().hex
        message = nodes_pb2.CachePurge(
            purge_id=purge_id,
            path_prefixes=selector.prefixes,
            everything=selector.everything,
            urls=selector.urls,
            tags=selector.tags,
            soft=soft,
        )
        if self._log is not None:  # logged before it is sent: a node connecting now gets it either way
            self._log.append(target, message)
        sessions = [s for s in self._fleet.live_sessions() if selects(target, s[0], s[1])]
        pending = _Pending(regions={node_id: region for node_id, region, _ in sessions})
        self._pending[purge_id] = pending
        try:
            for _, _, session in sessions:
                session.push_purge(message)
            if sessions:
                try:
                    async with asyncio.timeout(timeout_s):
                        await pending.complete.wait()
                except TimeoutError:
                    pass  # the nodes not done are reported late
        finally:
            del self._pending[purge_id]
        return cache_pb2.PurgeCacheResponse(
            purge_id=purge_id, node_ids=sorted(pending.regions), regions=report(pending)
        )


class CacheServicer(cache_pb2_grpc.CacheServiceServicer):
    def __init__(self, book: PurgeBook) -> None:
        self._book = book

    async def PurgeCache(  # noqa: N802 - gRPC method name
        self, request: cache_pb2.PurgeCacheRequest, context: Context
    ) -> cache_pb2.PurgeCacheResponse:
        try:
            selector = validate(request)
        except PurgeRequestError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"purge refused: {exc}")
        timeout_s = request.timeout_seconds or DEFAULT_TIMEOUT_S
        return await self._book.purge(selector, target=request.target, soft=request.soft, timeout_s=timeout_s)


def late_nodes(response: cache_pb2.PurgeCacheResponse) -> Sequence[str]:
    """Every node that did not answer in time, over all regions."""
    return [node_id for row in response.regions for node_id in row.late_node_ids]
