"""Emulated wearables on Bumble, and a bleak backend on Bumble, so production BleakClient code runs with no hardware.

Bumble and bleak are imported only when one of these names is first used (``firmware_bridge`` core needs
NumPy only)::

    from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork, BleakClientBumble

Modules: ``link`` (virtual radio, devices on a real HCI transport), ``central`` (the gateway-side Bumble
device), ``bleak_backend`` (bleak client and scanner backends), ``wearable`` (``EmulatedWearable``: what every
emulated peripheral shares, and the choice of server by profile), ``streaming`` (streams of sampled signals),
one server per kind of profile (``native_server``, ``measurement_server``, ``pmd_server``), ``signals``
(simulated and recorded signals, vital signs), ``faults`` (seeded loss, reordering, disconnects).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "VirtualBleNetwork": "link",
    "VirtualController": "link",
    "device_on_transport": "link",
    "BumbleCentral": "central",
    "BleakClientBumble": "bleak_backend",
    "BleakScannerBumble": "bleak_backend",
    "BumbleDeviceDetails": "bleak_backend",
    "discover": "bleak_backend",
    "EmulatedWearable": "wearable",
    "WearableCounters": "wearable",
    "NativeWearable": "native_server",
    "MeasurementWearable": "measurement_server",
    "PmdWearable": "pmd_server",
    "SignalSource": "signals",
    "simulated_signals": "signals",
    "recorded_signals": "signals",
    "LinkFaults": "faults",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
