"""SQLite persistence (WAL): a small repository over modules, apps, deployments and nodes.

Every call is one short transaction on a local file; with WAL and ``synchronous=NORMAL`` a
commit does not fsync, so calls take tens of microseconds and run directly on the event
loop rather than paying a thread hop each. Migrations are numbered and recorded in
``PRAGMA user_version``; a database from a newer control plane is refused, not guessed at.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from control_plane.errors import StoreError
from control_plane.records import DeploymentRecord, ModuleRecord, NodeRecord, ProgressRecord
from runtime.signing import Signature

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE modules (
        sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, size_bytes INTEGER NOT NULL,
        abi INTEGER NOT NULL, created_at REAL NOT NULL, imports TEXT NOT NULL
    );
    CREATE TABLE apps (
        name TEXT NOT NULL, version TEXT NOT NULL, seq INTEGER NOT NULL, digest TEXT NOT NULL,
        created_at REAL NOT NULL, body BLOB NOT NULL, PRIMARY KEY (name, version)
    );
    CREATE TABLE app_modules (
        name TEXT NOT NULL, version TEXT NOT NULL, sha256 TEXT NOT NULL,
        PRIMARY KEY (name, version, sha256)
    );
    CREATE INDEX app_modules_sha256 ON app_modules (sha256);
    CREATE TABLE deployments (
        id INTEGER PRIMARY KEY AUTOINCREMENT, app_name TEXT NOT NULL, app_version TEXT NOT NULL,
        selector BLOB NOT NULL, created_at REAL NOT NULL
    );
    CREATE TABLE deployment_nodes (
        deployment_id INTEGER NOT NULL, node_id TEXT NOT NULL, region TEXT NOT NULL,
        state TEXT NOT NULL, error BLOB, PRIMARY KEY (deployment_id, node_id)
    );
    CREATE TABLE nodes (
        node_id TEXT PRIMARY KEY, region TEXT NOT NULL, pop TEXT NOT NULL, address TEXT NOT NULL,
        agent_version TEXT NOT NULL, capacity_rps REAL NOT NULL, assignment_version TEXT NOT NULL,
        app_name TEXT NOT NULL, app_version TEXT NOT NULL, last_heartbeat REAL NOT NULL,
        last_error BLOB
    );
    """,
    # 2: progressive rollouts (control_plane/rollouts/store.py): the rollout as one JSON
    # document, rewritten on every change, and every transition appended.
    """
    CREATE TABLE rollouts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, app_name TEXT NOT NULL,
        state TEXT NOT NULL, created_at REAL NOT NULL, body TEXT NOT NULL
    );
    CREATE INDEX rollouts_app ON rollouts (app_name, state);
    CREATE TABLE rollout_transitions (
        rollout_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (rollout_id, seq)
    );
    """,
    # 3: signed modules (runtime/signing.py): one Ed25519 signature per module and key, gone
    # with the module's row.
    """
    CREATE TABLE module_signatures (
        sha256 TEXT NOT NULL REFERENCES modules (sha256) ON DELETE CASCADE, key_id TEXT NOT NULL,
        public_key BLOB NOT NULL, signature BLOB NOT NULL, PRIMARY KEY (sha256, key_id)
    );
    """,
    # 4: the purge log (control_plane/purge_log.py): every cache purge in order, so a node
    # that was away gets the ones it missed.
    """
    CREATE TABLE purge_log (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL,
        target BLOB NOT NULL, purge BLOB NOT NULL
    );
    """,
)


_SET_PROGRESS = "UPDATE deployment_nodes SET state = ?, error = ? WHERE deployment_id = ? AND node_id = ?"
_PUT_NODE = "INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# One node's progress in one deployment: (state, error, deployment id, node id).
ProgressRow = tuple[str, bytes | None, int, str]


def _node_row(node: NodeRecord) -> tuple[object, ...]:
    return (
        node.node_id,
        node.region,
        node.pop,
        node.address,
        node.agent_version,
        node.capacity_rps,
        node.assignment_version,
        node.app_name,
        node.app_version,
        node.last_heartbeat,
        node.last_error,
    )


class Database:
    """The control plane's SQLite database; one connection, used from the event-loop thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreError(path=str(path), reason=f"cannot open database: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise StoreError(
                path=str(self.path),
                reason=f"schema version {current} is newer than this control plane ({len(MIGRATIONS)})",
            )
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self._tx():
                for statement in script.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {number}")

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One short write transaction, for repositories beside this one (rollouts)."""
        return self._tx()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- modules -------------------------------------------------------------------------

    def put_module(self, record: ModuleRecord) -> ModuleRecord:
        """Insert ``record`` unless the digest is known, and add its signatures (a key's newer
        signature replaces its older one); return what is stored."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO modules VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.sha256,
                    record.name,
                    record.size_bytes,
                    record.abi,
                    record.created_at,
                    json.dumps(list(record.imports)),
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO module_signatures VALUES (?, ?, ?, ?)",
                [(record.sha256, s.key_id, s.public_key, s.signature) for s in record.signatures],
            )
        stored = self.get_module(record.sha256)
        assert stored is not None
        return stored

    def get_module(self, sha256: str) -> ModuleRecord | None:
        row = self._conn.execute("SELECT * FROM modules WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else _module(row, self.module_signatures(sha256))

    def list_modules(self) -> list[ModuleRecord]:
        rows = self._conn.execute("SELECT * FROM modules ORDER BY created_at DESC, sha256").fetchall()
        return [_module(row, self.module_signatures(str(row[0]))) for row in rows]

    def module_signatures(self, sha256: str) -> tuple[Signature, ...]:
        rows = self._conn.execute(
            "SELECT key_id, public_key, signature FROM module_signatures WHERE sha256 = ? ORDER BY key_id",
            (sha256,),
        ).fetchall()
        return tuple(Signature(key_id=str(r[0]), public_key=bytes(r[1]), signature=bytes(r[2])) for r in rows)

    def module_users(self, sha256: str) -> tuple[str, ...]:
        rows = self._conn.execute(
            "SELECT name, version FROM app_modules WHERE sha256 = ? ORDER BY name, version", (sha256,)
        ).fetchall()
        return tuple(f"{name}@{version}" for name, version in rows)

    def delete_module(self, sha256: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM modules WHERE sha256 = ?", (sha256,))

    # -- apps ----------------------------------------------------------------------------

    def put_app(
        self,
        *,
        name: str,
        version: str,
        digest: str,
        created_at: float,
        body: bytes,
        sha256s: tuple[str, ...],
    ) -> None:
        """Insert an app version and the module references it holds."""
        with self._tx() as conn:
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM apps").fetchone()[0]
            conn.execute(
                "INSERT INTO apps VALUES (?, ?, ?, ?, ?, ?)", (name, version, seq, digest, created_at, body)
            )
            conn.executemany(
                "INSERT OR IGNORE INTO app_modules VALUES (?, ?, ?)",
                [(name, version, sha256) for sha256 in sha256s],
            )

    def get_app(self, name: str, version: str | None) -> tuple[str, bytes] | None:
        """(digest, body) of ``name@version``, or of the latest version when ``version`` is None."""
        if version is None:
            row = self._conn.execute(
                "SELECT digest, body FROM apps WHERE name = ? ORDER BY seq DESC LIMIT 1", (name,)
            ).fetchone()
        else:
            row = self._conn.execute(
                "SELECT digest, body FROM apps WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def list_apps(self) -> list[tuple[str, list[str]]]:
        """(name, versions in registration order), sorted by name."""
        apps: dict[str, list[str]] = {}
        for name, version in self._conn.execute("SELECT name, version FROM apps ORDER BY name, seq"):
            apps.setdefault(name, []).append(version)
        return list(apps.items())

    # -- deployments ---------------------------------------------------------------------

    def add_deployment(
        self, *, app_name: str, app_version: str, selector: bytes, targets: list[tuple[str, str]]
    ) -> DeploymentRecord:
        created_at = time.time()
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO deployments (app_name, app_version, selector, created_at) VALUES (?, ?, ?, ?)",
                (app_name, app_version, selector, created_at),
            )
            deployment_id = int(cursor.lastrowid or 0)
            conn.executemany(
                "INSERT INTO deployment_nodes VALUES (?, ?, ?, 'pending', NULL)",
                [(deployment_id, node_id, region) for node_id, region in targets],
            )
        return DeploymentRecord(
            id=deployment_id,
            app_name=app_name,
            app_version=app_version,
            selector=selector,
            created_at=created_at,
        )

    def list_deployments(self) -> list[DeploymentRecord]:
        rows = self._conn.execute("SELECT * FROM deployments ORDER BY id").fetchall()
        return [
            DeploymentRecord(
                id=int(r[0]), app_name=r[1], app_version=r[2], selector=bytes(r[3]), created_at=float(r[4])
            )
            for r in rows
        ]

    def deployment_progress(self, deployment_id: int) -> list[ProgressRecord]:
        rows = self._conn.execute(
            "SELECT node_id, region, state, error FROM deployment_nodes WHERE deployment_id = ?"
            " ORDER BY region, node_id",
            (deployment_id,),
        ).fetchall()
        return [
            ProgressRecord(node_id=r[0], region=r[1], state=r[2], error=None if r[3] is None else bytes(r[3]))
            for r in rows
        ]

    def set_progress(self, deployment_id: int, node_id: str, state: str, error: bytes | None) -> None:
        with self._tx() as conn:
            conn.execute(_SET_PROGRESS, (state, error, deployment_id, node_id))

    # -- nodes ---------------------------------------------------------------------------

    def put_node(self, node: NodeRecord, *, progress: tuple[int, str, bytes | None] | None = None) -> None:
        """Write ``node``; with ``progress`` (deployment id, state, error), the node's progress in
        that deployment too, in the same commit (an ACK is one commit, not two)."""
        with self._tx() as conn:
            if progress is not None:
                deployment_id, state, error = progress
                conn.execute(_SET_PROGRESS, (state, error, deployment_id, node.node_id))
            conn.execute(_PUT_NODE, _node_row(node))

    def put_answers(self, nodes: Sequence[NodeRecord], progress: Sequence[ProgressRow]) -> None:
        """Write many nodes and progress rows in one commit (a group commit of node answers;
        rows apply in order, so of two for one node the later wins)."""
        with self._tx() as conn:
            conn.executemany(_SET_PROGRESS, progress)
            conn.executemany(_PUT_NODE, [_node_row(node) for node in nodes])

    def list_nodes(self) -> list[NodeRecord]:
        rows = self._conn.execute("SELECT * FROM nodes ORDER BY region, node_id").fetchall()
        return [
            NodeRecord(
                node_id=r[0],
                region=r[1],
                pop=r[2],
                address=r[3],
                agent_version=r[4],
                capacity_rps=float(r[5]),
                assignment_version=r[6],
                app_name=r[7],
                app_version=r[8],
                last_heartbeat=float(r[9]),
                last_error=None if r[10] is None else bytes(r[10]),
            )
            for r in rows
        ]


def _module(row: tuple[object, ...], signatures: tuple[Signature, ...]) -> ModuleRecord:
    imports = json.loads(str(row[5]))
    return ModuleRecord(
        sha256=str(row[0]),
        name=str(row[1]),
        size_bytes=int(str(row[2])),
        abi=int(str(row[3])),
        created_at=float(str(row[4])),
        imports=tuple(str(i) for i in imports),
        signatures=signatures,
    )
