"""Library: the node side of the control-plane session (connect, assignments, module fetch, ACK/NACK).

Edge nodes and gateways import ``cpclient.NodeSession``; process packages never import each
other, so this client lives here rather than in ``control_plane``.
"""

from cpclient.backoff import Backoff
from cpclient.channel import TlsSettings, auth_metadata, open_channel
from cpclient.errors import ApplyError, CpClientError, ModuleFetchError
from cpclient.session import AppliedState, NodeIdentity, NodeSession, SessionSettings, SessionStats
from cpclient.store import DirectoryModuleStore, MemoryModuleStore, ModuleStore

__all__ = [
    "AppliedState",
    "ApplyError",
    "Backoff",
    "CpClientError",
    "DirectoryModuleStore",
    "MemoryModuleStore",
    "ModuleFetchError",
    "ModuleStore",
    "NodeIdentity",
    "NodeSession",
    "SessionSettings",
    "SessionStats",
    "TlsSettings",
    "auth_metadata",
    "open_channel",
]
