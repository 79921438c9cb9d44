"""Library: clients of the control plane that live outside it.

- the node side of the session (``NodeSession``: connect, assignments, module fetch,
  ACK/NACK) for edge nodes and gateways;
- the operator side (``cpclient.operator``: modules, apps, deployments, nodes) for edgectl
  and ``edgecdn up``;
- the live node inventory (``cpclient.inventory``) for the router;
- manifest <-> wire conversions (``cpclient.apps``).

Process packages never import each other, so these live here.
"""

from cpclient.backoff import Backoff
from cpclient.channel import TlsSettings, auth_metadata, open_channel, tls_settings
from cpclient.errors import ApplyError, ControlPlaneCallError, CpClientError, ModuleFetchError
from cpclient.purge_state import PurgeState
from cpclient.session import NodeSession
from cpclient.session_model import AppliedState, NodeIdentity, SessionSettings, SessionStats
from cpclient.store import DirectoryModuleStore, MemoryModuleStore, ModuleStore

__all__ = [
    "AppliedState",
    "ApplyError",
    "Backoff",
    "ControlPlaneCallError",
    "CpClientError",
    "DirectoryModuleStore",
    "MemoryModuleStore",
    "ModuleFetchError",
    "ModuleStore",
    "NodeIdentity",
    "NodeSession",
    "PurgeState",
    "SessionSettings",
    "SessionStats",
    "TlsSettings",
    "auth_metadata",
    "open_channel",
    "tls_settings",
]
