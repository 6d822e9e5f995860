"""Which bleak backend the transport drives: the platform's (BlueZ on a Jetson) or Bumble's.

The connection code is the same for both; only the classes handed to bleak's ``backend=`` parameters and
the keyword arguments forwarded to them differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TransportBackend:
    """``client_backend``/``scanner_backend``: ``BaseBleakClient``/``BaseBleakScanner`` subclasses, or None
    for bleak's platform default; ``client_kwargs``/``scanner_kwargs`` go to ``BleakClient``/``BleakScanner``
    (bleak forwards unknown keyword arguments to the backend)."""

    name: str = "platform"
    client_backend: type | None = None
    scanner_backend: type | None = None
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    scanner_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def platform(cls, *, adapter: str | None = None) -> TransportBackend:
        """bleak's default backend (BlueZ over D-Bus on Linux); ``adapter`` e.g. ``"hci1"`` on BlueZ."""
        kwargs = {"bluez": {"adapter": adapter}} if adapter else {}
        return cls("platform", None, None, dict(kwargs), dict(kwargs))

    @classmethod
    def bumble(cls, central) -> TransportBackend:
        """The Bumble backend on ``central`` (a ``firmware_bridge.emulation.BumbleCentral``: a virtual
        link's central from ``VirtualBleNetwork.central()``, or a real controller via ``BumbleCentral.open``)."""
        from biomoe_edge.firmware_bridge.emulation.bleak_backend import BleakClientBumble, BleakScannerBumble

        kwargs = {"bumble_central": central}
        return cls("bumble", BleakClientBumble, BleakScannerBumble, dict(kwargs), dict(kwargs))
