"""The edge node's side of the control-plane session: apply assignments, keep the last good one.

``cpclient.NodeSession`` speaks the protocol (hello, fetch by digest with sha256
verification, ACK/NACK, heartbeats); this module decides what applying means for a node:
build the whole app off the event loop (compile or load from the AOT cache, link), swap
it in with one assignment, and write the assignment to disk so that after a restart the
node serves it again even while the control plane is away. A module that does not
compile is an ``ApplyError``, which the session NACKs while the node keeps its app; so is
one that no trusted key signed, when the node has any (checked before compiling, on
restore from disk too).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from google.protobuf.message import DecodeError

from cpclient import AppliedState, ApplyError, ModuleStore
from cpclient.apps import manifest_from_app_version
from edge_node.app import LoadedApp, build_app
from edge_node.errors import ConfigLoadError
from edge_node.metrics import AppFigures
from edge_node.state import NodeState
from protos.edgecdn.v1 import nodes_pb2
from runtime.files import write_bytes_atomically
from runtime.signing import ModuleSignatureError, TrustedKeys
from wasm_host.component_cache import ComponentCache
from wasm_host.engine import WasmEngine
from wasm_host.executor import WasmExecutor

logger = logging.getLogger(__name__)

LAST_GOOD_FILE = "last-good-assignment.binpb"


class AssignmentApplier:
    """Turns assignments into the app the node serves, and remembers the last good one."""

    def __init__(
        self,
        *,
        state: NodeState,
        engine: WasmEngine,
        cache: ComponentCache,
        store: ModuleStore,
        executor: WasmExecutor,
        data_dir: Path,
        figures: Callable[[str, str], AppFigures],
        trusted: TrustedKeys | None = None,
    ) -> None:
        self._state = state
        self._trusted = trusted or TrustedKeys()
        self._figures = figures
        self._engine = engine
        self._cache = cache
        self._store = store
        self._executor = executor
        self._last_good = data_dir / LAST_GOOD_FILE

    async def apply(self, assignment: nodes_pb2.Assignment, blobs: Mapping[str, bytes]) -> None:
        """Build and swap in the assigned app; ApplyError (a NACK) leaves the current app serving."""
        app = await asyncio.to_thread(self._build, assignment, blobs)
        self._swap(app)
        await asyncio.to_thread(write_bytes_atomically, self._last_good, assignment.SerializeToString())
        logger.info("serving %s@%s (assignment %s)", app.name, app.version, assignment.version)

    def restore(self) -> AppliedState:
        """Serve the last good assignment from disk, if there is one whose modules are all here."""
        try:
            assignment = nodes_pb2.Assignment.FromString(self._last_good.read_bytes())
        except FileNotFoundError:
            return AppliedState()
        except (OSError, DecodeError) as exc:
            logger.warning("ignoring unreadable last good assignment %s: %s", self._last_good, exc)
            return AppliedState()
        try:
            blobs = {ref.sha256: self._store.get(ref.sha256) for ref in assignment.app.modules}
            self._swap(self._build(assignment, blobs))
        except (OSError, ValueError, ApplyError) as exc:
            logger.warning("cannot restore assignment %s: %s", assignment.version, exc)
            return AppliedState()
        logger.info("restored %s@%s from disk", assignment.app.name, assignment.app.version)
        return AppliedState(version=assignment.version, app=assignment.app)

    def _build(self, assignment: nodes_pb2.Assignment, blobs: Mapping[str, bytes]) -> LoadedApp:
        for ref in assignment.app.modules:
            try:
                self._trusted.check(sha256=ref.sha256, name=ref.name, signatures=ref.signatures)
            except ModuleSignatureError as exc:
                raise ApplyError(code=exc.code, reason=str(exc), sha256=ref.sha256) from exc
        manifest = manifest_from_app_version(assignment.app)
        sources = {name: blobs[spec.sha256 or ""] for name, spec in manifest.modules.items()}
        try:
            return build_app(manifest, sources, engine=self._engine, cache=self._cache, figures=self._figures)
        except ConfigLoadError as exc:
            failed = manifest.modules.get(str(exc.details.get("module", "")))
            digest = (failed.sha256 or "") if failed is not None else ""
            raise ApplyError(code="module_compile_failed", reason=exc.message, sha256=digest) from exc

    def _swap(self, app: LoadedApp) -> None:
        previous = self._state.swap(app)
        if previous is not None:
            for module in previous.modules.values():
                self._executor.forget(module.handler)
