"""The errors of fitting a bridge. All are ``ValueError``s: the command line prints them as one line naming what
was wrong. A head or bridge folder that cannot be used is the serving side's ``HeadError`` / ``BridgeError``
(``runtime.heads``), the same classes the gateway raises; fitting adds its own below."""

from __future__ import annotations

from biomoe_edge.runtime.heads import BridgeError, HeadError

__all__ = ["BridgeConfigError", "BridgeError", "HeadError", "PairingError", "PositionSelectionError"]


class PairingError(BridgeError):
    """Paired data that cannot be paired: modalities that do not overlap in time, windows of unequal count or
    rate, too few windows."""


class PositionSelectionError(BridgeError):
    """Too little (or too uniform) paired data to choose where the bridge reads and writes."""


class BridgeConfigError(BridgeError):
    """A rank, prototype count or position that does not fit the chosen layers."""
