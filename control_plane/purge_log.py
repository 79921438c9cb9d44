"""The purge log: every cache purge the control plane sent, in order, in SQLite.

A node that was disconnected during a purge still holds what was purged. Each purge gets
the next ``sequence`` of the log; a node reports in its hello the newest one its cache has
carried out, and the control plane sends it the ones after that (``replay``). The log keeps
the newest ``RETAINED`` purges: a node whose report falls before them, or after the newest
(another control plane's log, or one started afresh), has its whole cache marked stale
instead: a soft purge of everything, revalidated on next use, never a wrong answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from control_plane.db import Database
from protos.edgecdn.v1 import common_pb2, nodes_pb2

RETAINED = 10_000


@dataclass(frozen=True, slots=True)
class LoggedPurge:
    sequence: int
    target: common_pb2.Selector
    purge: nodes_pb2.CachePurge


def selects(target: common_pb2.Selector, node_id: str, region: str) -> bool:
    """Whether ``target`` covers the node; an empty selector covers every node."""
    if target.all or not (target.regions or target.node_ids):
        return True
    return region in target.regions or node_id in target.node_ids


def what_to_replay(hello: nodes_pb2.NodeHello, *, oldest: int, newest: int) -> str:
    """ "none", "everything" (its report is outside the log) or "log" (the purges after it).

    ``oldest`` and ``newest`` bound the log (0 and 0 when it is empty).
    """
    reported = hello.purge_sequence
    if hello.cache_empty or newest in {0, reported}:
        return "none"
    if reported > newest or reported < oldest - 1:
        return "everything"
    return "log"


def replay(
    logged: list[LoggedPurge], *, oldest: int, newest: int, hello: nodes_pb2.NodeHello
) -> list[nodes_pb2.CachePurge]:
    """What a node that said ``hello`` missed; ``logged`` holds the purges after its report."""
    kind = what_to_replay(hello, oldest=oldest, newest=newest)
    if kind == "none":
        return []
    if kind == "everything":
        soft_all = nodes_pb2.CachePurge(
            purge_id=f"replay-everything-{newest}", everything=True, soft=True, sequence=newest
        )
        return [soft_all]
    return [
        entry.purge
        for entry in logged
        if entry.sequence > hello.purge_sequence and selects(entry.target, hello.node_id, hello.region)
    ]


class PurgeLog:
    """The purge log of one control plane's database. Its bounds are read once and then kept
    in memory: this process is the log's only writer (one control plane per data directory),
    and every node's new session asks for them."""

    def __init__(self, db: Database) -> None:
        self._db = db
        with db.transaction() as conn:
            oldest, newest = conn.execute("SELECT MIN(sequence), MAX(sequence) FROM purge_log").fetchone()
        self._bounds = (int(oldest or 0), int(newest or 0))

    def append(self, target: common_pb2.Selector, purge: nodes_pb2.CachePurge) -> int:
        """Log ``purge`` (its ``sequence`` is set here) and return its sequence."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO purge_log (created_at, target, purge) VALUES (?, ?, ?)",
                (time.time(), target.SerializeToString(), b""),
            )
            sequence = int(cursor.lastrowid or 0)
            purge.sequence = sequence
            conn.execute(
                "UPDATE purge_log SET purge = ? WHERE sequence = ?", (purge.SerializeToString(), sequence)
            )
            conn.execute("DELETE FROM purge_log WHERE sequence <= ?", (sequence - RETAINED,))
        # Sequences are consecutive (AUTOINCREMENT, one writer): the trim leaves the newest RETAINED.
        self._bounds = (max(self._bounds[0] or sequence, sequence - RETAINED + 1), sequence)
        return sequence

    def bounds(self) -> tuple[int, int]:
        """(oldest, newest) sequence retained; (0, 0) when none."""
        return self._bounds

    def after(self, sequence: int) -> list[LoggedPurge]:
        """The purges after ``sequence``, oldest first."""
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT sequence, target, purge FROM purge_log WHERE sequence > ? ORDER BY sequence",
                (sequence,),
            ).fetchall()
        return [
            LoggedPurge(
                int(seq), common_pb2.Selector.FromString(target), nodes_pb2.CachePurge.FromString(purge)
            )
            for seq, target, purge in rows
        ]

    def missed(self, hello: nodes_pb2.NodeHello) -> list[nodes_pb2.CachePurge]:
        """The purges to send a node that just said ``hello`` (``replay``)."""
        oldest, newest = self.bounds()
        needs_log = what_to_replay(hello, oldest=oldest, newest=newest) == "log"
        logged = self.after(hello.purge_sequence) if needs_log else []
        return replay(logged, oldest=oldest, newest=newest, hello=hello)
