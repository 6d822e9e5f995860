"""Every error the bridge raises, in one place. All are ``ValueError``s: the command line prints them as one
line naming what was wrong."""

from __future__ import annotations


class BridgeError(ValueError):
    """Base of the bridge's errors."""


class PairingError(BridgeError):
    """Paired data that cannot be paired: modalities that do not overlap in time, windows of unequal count or
    rate, too few windows."""


class HeadError(BridgeError):
    """A head folder that is not a usable old-modality head: missing or malformed files, several inputs, another
    modality, or a head trained on another backbone."""


class PositionSelectionError(BridgeError):
    """Too little (or too uniform) paired data to choose where the bridge reads and writes."""


class BridgeConfigError(BridgeError):
    """A rank, prototype count or position that does not fit the chosen layers."""


class BridgeFolderError(BridgeError):
    """A bridge folder (bridge.onnx + bridge.json) that is missing or malformed."""
