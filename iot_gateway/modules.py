"""Modules shared by every gateway of the process: download once, compile once, per digest.

An OTA to a thousand gateways in one process is one download from the control plane and one
compile; everyone awaits the same task. Module bytes are kept content-addressed under
``<state-dir>/gateways/modules/`` and each gateway's last good module is named in
``<state-dir>/gateways/<id>/last-good.json``, so a restart runs it even while the control
plane is away. With trusted keys (``--trusted-key``), a module taken over the air must be
signed by one of them: its signatures come with the download and are checked before it is
compiled (a module this process has not verified is downloaded again to check them).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from cpclient.channel import TlsSettings, auth_metadata, open_channel
from cpclient.errors import ModuleFetchError
from cpclient.fetch import fetch_signed_module
from iot_gateway.errors import ModuleRefusedError
from protos.edgecdn.v1 import modules_pb2_grpc
from runtime.files import write_atomically, write_bytes_atomically
from runtime.signing import ModuleSignatureError, TrustedKeys
from wasm_host import (
    AbiMismatchError,
    Handler,
    Limits,
    ModuleCache,
    ModuleInvalidError,
    WasmEngine,
    create_handler,
    module_digest,
)

logger = logging.getLogger(__name__)
WASM_MAGIC = b"\0asm"
FETCH_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedModule:
    digest: str
    name: str
    handler: Handler


class ModuleLibrary:
    """Per-process store of compiled modules and their handlers, keyed by sha256."""

    def __init__(
        self,
        engine: WasmEngine,
        *,
        state_dir: Path,
        control_plane: str | None,
        token: str,
        limits: Limits,
        env: dict[str, str],
        on_download: Callable[[], None] = lambda: None,
        trusted: TrustedKeys | None = None,
        tls: TlsSettings | None = None,
    ) -> None:
        self._engine = engine
        self._trusted = trusted or TrustedKeys()
        self._verified: set[str] = set()  # digests whose signature this process checked
        self._root = state_dir / "gateways"
        self._cache = ModuleCache(engine)
        self._control_plane = control_plane
        self._token = token
        self._tls = tls
        self._limits = limits
        self._env = env
        self._loaded: dict[str, LoadedModule] = {}
        self._pending: dict[str, asyncio.Task[LoadedModule]] = {}
        self._channel: grpc.aio.Channel | None = None
        self._on_download = on_download

    async def close(self) -> None:
        for task in self._pending.values():
            task.cancel()
        if self._channel is not None:
            await self._channel.close()

    def _blob(self, digest: str) -> Path:
        return self._root / "modules" / f"{digest}.wasm"

    def load_bytes(self, wasm: bytes, *, name: str) -> LoadedModule:
        """Compile ``wasm`` (or reuse it) and make its handler; ModuleRefusedError otherwise."""
        digest = module_digest(wasm)
        known = self._loaded.get(digest)
        if known is not None:
            return known
        if not wasm.startswith(WASM_MAGIC):
            raise ModuleRefusedError(sha256=digest, reason="not_wasm", detail="not a wasm binary")
        try:
            compiled = self._cache.load(wasm)
            handler = create_handler(
                self._engine, compiled, abi="wagi", limits=self._limits, env=self._env, name=name
            )
        except ModuleInvalidError as exc:
            raise ModuleRefusedError(sha256=digest, reason="not_wasm", detail=str(exc)) from exc
        except AbiMismatchError as exc:
            raise ModuleRefusedError(sha256=digest, reason="abi_mismatch", detail=str(exc)) from exc
        loaded = LoadedModule(digest=digest, name=name, handler=handler)
        self._keep_blob(digest, wasm)
        return self._loaded.setdefault(digest, loaded)

    def load_file(self, path: Path) -> LoadedModule:
        try:
            wasm = path.read_bytes()
        except OSError as exc:
            raise ModuleRefusedError(sha256="", reason="unreadable", detail=f"{path}: {exc}") from exc
        return self.load_bytes(wasm, name=_name_of(path))

    def load_kept(self, digest: str, *, name: str = "") -> LoadedModule | None:
        """The module kept on disk under ``digest``, or None when it is missing or broken."""
        known = self._loaded.get(digest)
        if known is not None:
            return known
        try:
            wasm = self._blob(digest).read_bytes()
            if module_digest(wasm) != digest:
                return None
            return self.load_bytes(wasm, name=name or f"module-{digest[:12]}")
        except (OSError, ModuleRefusedError):
            return None

    async def fetch(self, digest: str) -> LoadedModule:
        """The module ``digest``: kept, or downloaded and compiled by one shared task."""
        known = self._loaded.get(digest) or self.load_kept(digest)
        if known is not None and (not self._trusted.required or digest in self._verified):
            return known
        task = self._pending.get(digest)
        if task is None:
            task = asyncio.create_task(self._download(digest), name=f"module-fetch-{digest[:12]}")
            self._pending[digest] = task
            # A failed download is forgotten, so a later command may try again.
            task.add_done_callback(lambda _t: self._pending.pop(digest, None))
        return await asyncio.shield(task)

    async def _download(self, digest: str) -> LoadedModule:
        if self._control_plane is None:
            raise ModuleRefusedError(
                sha256=digest, reason="fetch_failed", detail="no --control-plane to fetch from"
            )
        if self._channel is None:
            self._channel = open_channel(self._control_plane, self._tls)
        stub = modules_pb2_grpc.ModuleServiceStub(self._channel)
        try:
            fetched = await fetch_signed_module(
                stub, digest, metadata=auth_metadata(self._token), timeout_s=FETCH_TIMEOUT_S
            )
        except ModuleFetchError as exc:
            reason = "digest_mismatch" if exc.code == "digest_mismatch" else "fetch_failed"
            raise ModuleRefusedError(sha256=digest, reason=reason, detail=str(exc)) from exc
        self._on_download()
        name = f"module-{digest[:12]}"
        try:  # before compiling: an unsigned module never reaches the compiler
            self._trusted.check(sha256=digest, name=name, signatures=fetched.signatures)
        except ModuleSignatureError as exc:
            raise ModuleRefusedError(sha256=digest, reason=exc.refusal, detail=str(exc)) from exc
        self._verified.add(digest)
        wasm = fetched.data
        # Compiling takes tens of milliseconds: off the event loop, so other gateways go on.
        return await asyncio.to_thread(self.load_bytes, wasm, name=name)

    def _keep_blob(self, digest: str, wasm: bytes) -> None:
        path = self._blob(digest)
        if path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomically(path, wasm)
        except OSError as exc:
            logger.warning("cannot keep module %s on disk: %s", digest[:12], exc)

    def remember(self, gateway_id: str, module: LoadedModule) -> None:
        """Name ``module`` as ``gateway_id``'s last good one (its bytes are already kept)."""
        path = self._root / gateway_id / "last-good.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, json.dumps({"sha256": module.digest, "name": module.name}))
        except OSError as exc:
            logger.warning("cannot record %s's last good module: %s", gateway_id, exc)

    def last_good(self, gateway_id: str) -> tuple[str, str] | None:
        """The digest and name of ``gateway_id``'s last good module, if one was recorded."""
        try:
            data = json.loads((self._root / gateway_id / "last-good.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sha256"), str):
            return None
        return str(data["sha256"]), str(data.get("name") or "")


def _name_of(path: Path) -> str:
    return path.stem.replace("_", "-")
