"""Which edge nodes exist: from ``--edge`` flags, from a JSON file, or live from the control plane.

Whatever the source, the router sees one :class:`Inventory`: node id -> :class:`EdgeEntry`,
replaced as a whole when the source changes (never half updated). Sources:

- ``--edge REGION=URL`` or ``--edge REGION/NODE_ID=URL`` (node ids default to
  ``REGION-a``, ``REGION-b``, ... in flag order, the way ``edgecdn up`` names nodes);
- ``--edges-file PATH``: JSON with ``edge_nodes: [{node_id, region, url}, ...]`` (the
  shape of ``.edgecdn/world.json``), re-read whenever it changes;
- ``--control-plane ADDR``: the control plane's ``NodeService/WatchNodes`` stream, so
  nodes that join or leave are routed to within a second (utilization from heartbeats).
  Only nodes the control plane vouches for (``NodeInfo.vouched``: a credential it holds may
  be that node) are routed to; a record it keeps without one (a revoked or never-issued
  credential) is not. With a control plane, no other source is read (``RouterConfig``
  refuses two sources), so a node known only from a file or a flag is never trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from geo.world import World
from protos.edgecdn.v1 import nodes_pb2
from router.errors import InventoryError

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY_RPS = 5000.0
FILE_POLL_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeEntry:
    """One edge node the router may send traffic to."""

    node_id: str
    region: str
    url: str
    capacity_rps: float = DEFAULT_CAPACITY_RPS
    # Utilization the node itself reported (heartbeats via the control plane), 0..1.
    reported_utilization: float = 0.0
    # Where the entry came from: "flag", "file" or the control plane's session status.
    source: str = "flag"


class Inventory:
    """The current set of edge nodes; ``generation`` counts replacements."""

    def __init__(self, entries: Iterable[EdgeEntry] = ()) -> None:
        self._entries: dict[str, EdgeEntry] = {}
        self.generation = 0
        self._listeners: list[Callable[[], None]] = []
        self.replace(entries)

    @property
    def entries(self) -> Mapping[str, EdgeEntry]:
        return self._entries

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def replace(self, entries: Iterable[EdgeEntry]) -> None:
        new = {entry.node_id: entry for entry in entries}
        if new == self._entries:
            return
        self._entries = new
        self.generation += 1
        for listener in self._listeners:
            listener()


def check_url(url: str, *, where: str) -> str:
    problem = f"{where}: {url!r} is not an edge node URL like http://127.0.0.1:8080"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise InventoryError(f"{problem} ({exc})") from exc
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise InventoryError(problem)
    if parts.path.strip("/") or parts.query or parts.fragment:
        # The request's own path goes to the node as it is: a base URL has nothing after the port.
        raise InventoryError(f"{problem} (a base URL: nothing after the port)")
    return url.rstrip("/")


def _check_region(world: World, region: str, *, where: str) -> None:
    known = {r.id for r in world.regions}
    if region not in known:
        raise InventoryError(f"{where}: unknown region {region!r} (the world has {', '.join(sorted(known))})")


def parse_edge_flags(values: Sequence[str], world: World) -> tuple[EdgeEntry, ...]:
    """``REGION=URL`` or ``REGION/NODE_ID=URL`` flags; node ids default per region by letter."""
    entries: list[EdgeEntry] = []
    counts: dict[str, int] = {}
    for value in values:
        where = f"--edge {value}"
        target, sep, url = value.partition("=")
        if not sep or not target or not url:
            raise InventoryError(f"{where}: expected REGION=URL or REGION/NODE_ID=URL")
        region, _, node_id = target.partition("/")
        _check_region(world, region, where=where)
        index = counts.get(region, 0)
        counts[region] = index + 1
        if not node_id:
            if index >= len(string.ascii_lowercase):
                raise InventoryError(f"{where}: name nodes (REGION/NODE_ID=URL) beyond 26 per region")
            node_id = f"{region}-{string.ascii_lowercase[index]}"
        entries.append(EdgeEntry(node_id=node_id, region=region, url=check_url(url, where=where)))
    _check_unique(entries)
    return tuple(entries)


def read_edges_file(path: Path, world: World) -> tuple[EdgeEntry, ...]:
    """The ``edge_nodes`` list of a JSON file (``.edgecdn/world.json`` has that shape)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data["edge_nodes"]
        if not isinstance(items, list):
            raise TypeError("edge_nodes is not a list")
    except FileNotFoundError as exc:
        raise InventoryError(f"--edges-file {path}: no such file") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InventoryError(f"--edges-file {path}: not an edge list ({exc})") from exc
    entries = []
    for index, item in enumerate(items):
        where = f"--edges-file {path}: edge_nodes[{index}]"
        try:
            node_id, region, url = str(item["node_id"]), str(item["region"]), str(item["url"])
            capacity = float(item.get("capacity_rps", DEFAULT_CAPACITY_RPS))
        except (KeyError, TypeError, ValueError) as exc:
            raise InventoryError(f"{where}: needs node_id, region and url ({exc})") from exc
        if not (math.isfinite(capacity) and capacity > 0):
            raise InventoryError(f"{where}: capacity_rps must be a positive number (got {capacity})")
        _check_region(world, region, where=where)
        entries.append(
            EdgeEntry(
                node_id=node_id,
                region=region,
                url=check_url(url, where=where),
                capacity_rps=capacity,
                source="file",
            )
        )
    _check_unique(entries)
    return tuple(entries)


def _check_unique(entries: Sequence[EdgeEntry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.node_id in seen:
            raise InventoryError(f"edge node {entry.node_id} is listed twice")
        seen.add(entry.node_id)


async def follow_edges_file(
    path: Path, world: World, inventory: Inventory, stop: asyncio.Event, *, poll_s: float = FILE_POLL_S
) -> None:
    """Re-read ``path`` whenever it changes; a bad version is logged and the last good kept."""
    last_seen: tuple[int, int] | None = None
    while not stop.is_set():
        try:
            stat = path.stat()  # noqa: ASYNC240 - one stat of a local file every half second
            signature = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            signature = None
        if signature is not None and signature != last_seen:
            last_seen = signature
            try:
                inventory.replace(read_edges_file(path, world))
            except InventoryError as exc:
                logger.warning("keeping the previous edge list: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)


def entries_from_control_plane(
    nodes: Mapping[str, nodes_pb2.NodeInfo], world: World
) -> tuple[EdgeEntry, ...]:
    """Edge entries for the nodes the control plane vouches for (with an address and a known region)."""
    known = {region.id for region in world.regions}
    entries = []
    for node in nodes.values():
        if not node.vouched or not node.address or node.region not in known:
            continue
        try:
            url = check_url(node.address, where=f"node {node.node_id}")
        except InventoryError as exc:
            logger.warning("ignoring %s", exc)
            continue
        entries.append(
            EdgeEntry(
                node_id=node.node_id,
                region=node.region,
                url=url,
                capacity_rps=node.capacity_rps or DEFAULT_CAPACITY_RPS,
                reported_utilization=node.load.utilization if node.HasField("load") else 0.0,
                source=_status_name(node.status),
            )
        )
    return tuple(sorted(entries, key=lambda e: e.node_id))


def _status_name(status: int) -> str:
    """``ready``, ``unreachable``, ...; a status from a newer control plane by its number."""
    try:
        return nodes_pb2.NodeStatus.Name(status).removeprefix("NODE_STATUS_").lower()  # type: ignore[arg-type]
    except ValueError:
        return f"status-{status}"
