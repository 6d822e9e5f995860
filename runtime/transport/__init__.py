"""BLE connections to wearables through bleak (BlueZ on a Jetson, or the Bumble backend for emulation).

``ConnectionManager(targets, on_packet=..., on_state=..., backend=...)`` keeps every allow-listed device
connected (``DeviceConnection`` per device): bleak + bleak-retry-connector, link security (``security``: none,
encrypted, bonded; identities pinned to names), description read, subscription, START, reconnection with
exponential backoff and full jitter. bleak is imported when a connection runs.
"""

from biomoe_edge.runtime.transport.allow_list import AllowList, DeviceTarget, normalize_address
from biomoe_edge.runtime.transport.backend import TransportBackend
from biomoe_edge.runtime.transport.backoff import Backoff
from biomoe_edge.runtime.transport.connection import ConnectionState, ConnectionStats, DeviceConnection
from biomoe_edge.runtime.transport.manager import ConnectionManager
from biomoe_edge.runtime.transport.security import IdentityPins, LinkSecurity, PinStoreError, SecurityLevel

__all__ = [
    "AllowList",
    "Backoff",
    "ConnectionManager",
    "ConnectionState",
    "ConnectionStats",
    "DeviceConnection",
    "DeviceTarget",
    "IdentityPins",
    "LinkSecurity",
    "PinStoreError",
    "SecurityLevel",
    "TransportBackend",
    "normalize_address",
]
