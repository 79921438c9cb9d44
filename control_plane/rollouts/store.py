"""Rollouts in SQLite: the rollout as one JSON document, rewritten on every change, and every
transition appended, so a control plane killed mid-rollout reads back exactly where it was.

Each ``save`` is one short transaction (the document and the new transitions together), so
the database never holds a rollout without the transitions that led to it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from control_plane.db import Database
from control_plane.errors import StoreError
from control_plane.rollouts.model import Rollout, Transition

ID_PREFIX = "r-"


class RolloutStore:
    """Rollouts of one control plane's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def next_id(self) -> str:
        """A new rollout id (``r-1``, ``r-2``, ...): never reused, even after a restart."""
        with self._db.transaction() as conn:
            (used,) = conn.execute("SELECT COUNT(*) FROM rollouts").fetchone()
        return f"{ID_PREFIX}{int(used) + 1}"

    def save(self, rollout: Rollout, transitions: Sequence[Transition] = ()) -> None:
        """Write ``rollout`` (insert or replace) and append ``transitions``, atomically."""
        body = json.dumps(rollout.to_dict(), separators=(",", ":"))
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO rollouts (id, app_name, state, created_at, body) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body",
                (rollout.id, rollout.spec.app, rollout.state.value, rollout.created_at, body),
            )
            if transitions:
                start = conn.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM rollout_transitions WHERE rollout_id = ?",
                    (rollout.id,),
                ).fetchone()[0]
                conn.executemany(
                    "INSERT INTO rollout_transitions (rollout_id, seq, body) VALUES (?, ?, ?)",
                    [
                        (rollout.id, start + offset, json.dumps(t.to_dict(), separators=(",", ":")))
                        for offset, t in enumerate(transitions, start=1)
                    ],
                )

    def load_all(self) -> list[Rollout]:
        """Every rollout, oldest first."""
        with self._db.transaction() as conn:
            rows = conn.execute("SELECT id, body FROM rollouts ORDER BY seq").fetchall()
        return [self._decode(str(rollout_id), str(body)) for rollout_id, body in rows]

    def transitions(self, rollout_id: str) -> list[Transition]:
        """The transitions appended for ``rollout_id``, oldest first."""
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT body FROM rollout_transitions WHERE rollout_id = ? ORDER BY seq", (rollout_id,)
            ).fetchall()
        return [Transition.from_dict(json.loads(body)) for (body,) in rows]

    def _decode(self, rollout_id: str, body: str) -> Rollout:
        try:
            return Rollout.from_dict(json.loads(body))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                path=str(self._db.path), reason=f"rollout {rollout_id} is unreadable: {exc}"
            ) from exc
