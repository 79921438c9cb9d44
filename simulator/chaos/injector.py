"""Carries faults out against a running world, at its OS and network edge, and logs each.

- ``kill``, ``freeze``, ``thaw``: signals to the world's processes (SIGKILL/SIGTERM,
  SIGSTOP, SIGCONT), only to pids whose parent is the world's supervisor, so a stale
  world.json can never make us signal a stranger;
- ``partition``: the fault relay between a region's nodes and the control plane resets
  and refuses their connections (docs/faultrelay.md);
- ``wan``: the router adds latency and packet loss between clients and a region
  (docs/router.md, "Faults");
- ``heal``: undoes every fault of both, and thaws every frozen process.

Lasting faults carry their ``for`` to the relay and the router, which end them by
themselves, so a fault never outlives it even when this process dies. Every fault and
heal is appended to the world's event log (runtime.events) for ``edgecdn load``'s report.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from runtime.events import events_path, record_event
from runtime.world_state import ProcessEntry, WorldState
from simulator.chaos.faults import Fault, resolve_processes, resolve_region
from simulator.errors import ChaosError
from simulator.layout import control_plane_link
from simulator.procfs import is_frozen, parent_pid

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S = 5.0


class WorldChaos:
    """Injects faults into the world described by ``state``; use as an async context manager."""

    def __init__(self, state: WorldState, *, events_file: Path | None = None) -> None:
        self._state = state
        self._events = events_file or Path(state.events_file or events_path())
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WorldChaos:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    def check(self, fault: Fault) -> None:
        """Refuse a fault whose target this world does not have, before anything is done."""
        if fault.action in {"partition", "wan"}:
            resolve_region(self._state, fault.target)
        elif fault.action != "heal":
            resolve_processes(self._state, fault.target)

    async def inject(self, fault: Fault) -> str:
        """Carry ``fault`` out; returns what was done, as a sentence."""
        if fault.action == "heal":
            return await self.heal_all()
        if fault.action in {"kill", "freeze", "thaw"}:
            message = self._signal(fault)
        elif fault.action == "partition":
            region = resolve_region(self._state, fault.target)
            body = {"kind": "partition", **({"for_s": fault.for_s} if fault.for_s else {})}
            await self._call(self._relay(), "PUT", f"/links/{control_plane_link(region)}/fault", body)
            message = f"partitioned {region}'s edge nodes from the control plane" + _for(fault)
        else:  # wan
            region = resolve_region(self._state, fault.target)
            body = {"latency_ms": fault.latency_ms, "loss": fault.loss}
            if fault.for_s:
                body["for_s"] = fault.for_s
            await self._call(self._router(), "PUT", f"/_router/faults/{region}", body)
            message = (
                f"clients of {region} get +{fault.latency_ms:g} ms and {fault.loss * 100:g}% packet loss"
                + _for(fault)
            )
        self._record(fault.action, fault.target, message, fault)
        return message

    async def undo(self, fault: Fault) -> str | None:
        """End one lasting fault (its ``for`` is up, or the chaos command was interrupted)."""
        if fault.action == "freeze":
            return await self.inject(Fault(action="thaw", target=fault.target))
        if fault.action == "partition":
            region = resolve_region(self._state, fault.target)
            await self._call(self._relay(), "DELETE", f"/links/{control_plane_link(region)}/fault")
            message = f"{region}'s edge nodes reach the control plane again"
        elif fault.action == "wan":
            region = resolve_region(self._state, fault.target)
            await self._call(self._router(), "DELETE", f"/_router/faults/{region}")
            message = f"clients of {region} have a clean network again"
        else:
            return None
        self._record("heal", fault.target, message, fault)
        return message

    async def heal_all(self) -> str:
        """Undo every fault: thaw every frozen process first (a frozen router or relay cannot
        be asked to heal), then the relay's and the router's faults, each tried whatever
        became of the other."""
        done, failed = [], []
        thawed = [entry for entry in self._world_processes() if is_frozen(entry.pid)]
        for entry in thawed:
            self._send(entry, signal.SIGCONT)
        done.append(f"thawed {', '.join(e.name for e in thawed)}" if thawed else "no process was frozen")
        for base, path, said in (
            (self._state.fault_relay_url, "/faults", "every region reaches the control plane"),
            (self._state.router_url, "/_router/faults", "clients have a clean network"),
        ):
            if not base:
                continue
            try:
                await self._call(base, "DELETE", path)
                done.append(said)
            except ChaosError as exc:
                failed.append(str(exc))
        message = "; ".join(done)
        self._record("heal", "world", message, None)
        if failed:
            raise ChaosError(f"{message}; but {'; '.join(failed)}")
        return message

    def _signal(self, fault: Fault) -> str:
        sig = {
            "kill": signal.Signals[f"SIG{fault.signal}"],
            "freeze": signal.SIGSTOP,
            "thaw": signal.SIGCONT,
        }[fault.action]
        entries = resolve_processes(self._state, fault.target)
        hit = [f"{entry.name} (pid {entry.pid})" for entry in entries if self._send(entry, sig)]
        if not hit:
            raise ChaosError(f"{fault.target}: no running process to {fault.action} (restarting?)")
        verb = {"kill": f"sent SIG{fault.signal} to", "freeze": "froze", "thaw": "thawed"}[fault.action]
        return f"{verb} {', '.join(hit)}" + _for(fault)

    def _send(self, entry: ProcessEntry, sig: signal.Signals) -> bool:
        if entry.state != "up":
            return False
        if parent_pid(entry.pid) != self._state.supervisor_pid:
            logger.warning("not signalling pid %d (%s): not a child of the world", entry.pid, entry.name)
            return False
        try:
            os.kill(entry.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def _world_processes(self) -> list[ProcessEntry]:
        return [entry for entry in self._state.processes if entry.state == "up"]

    def _relay(self) -> str:
        if not self._state.fault_relay_url:
            raise ChaosError("this world has no fault relay (started by an older edgecdn up?)")
        return self._state.fault_relay_url

    def _router(self) -> str:
        if not self._state.router_url:
            raise ChaosError("this world has no router")
        return self._state.router_url

    async def _call(self, base: str, method: str, path: str, body: Mapping[str, Any] | None = None) -> None:
        assert self._http is not None, "use WorldChaos as an async context manager"
        token = self._state.tokens.get("operator", "")
        try:
            async with self._http.request(
                method, f"{base}{path}", json=body, headers={"authorization": f"Bearer {token}"}
            ) as response:
                text = await response.text()
                if response.status >= 300:
                    raise ChaosError(f"{method} {base}{path}: {response.status} {_message(text)}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChaosError(f"{method} {base}{path}: no answer ({str(exc) or type(exc).__name__})") from exc

    def _record(self, kind: str, target: str, message: str, fault: Fault | None) -> None:
        details: dict[str, Any] = {}
        if fault is not None:
            details = {"action": fault.action, "for_s": fault.for_s}
            if fault.action == "kill":
                details["signal"] = fault.signal
            if fault.action == "wan":
                details |= {"latency_ms": fault.latency_ms, "loss": fault.loss}
        try:
            record_event(
                self._events, source="chaos", kind=kind, target=target, message=message, details=details
            )
        except OSError as exc:
            logger.warning("cannot write the event log %s: %s", self._events, exc)


def _for(fault: Fault) -> str:
    return f" for {fault.for_s:g}s" if fault.for_s else ""


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)
    return str(data)
