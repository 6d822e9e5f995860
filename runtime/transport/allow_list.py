"""Which devices the gateway may connect to: an allow-list by Bluetooth address or advertised name.

The gateway never connects to whatever happens to advertise: a device is a candidate only when it matches
a configured ``DeviceTarget``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from biomoe_edge.firmware_bridge.profiles.registry import Profile

_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


def normalize_address(address: str) -> str:
    """``aa-bb-cc-dd-ee-ff`` / ``aa:bb:...`` -> ``AA:BB:CC:DD:EE:FF``; ValueError if it is not one."""
    text = str(address).strip().upper().replace("-", ":")
    if not _ADDRESS.match(text):
        raise ValueError(f"not a Bluetooth address: {address!r} (expected six hex pairs, AA:BB:CC:DD:EE:FF)")
    return text


@dataclass(frozen=True)
class DeviceTarget:
    """One wearable to connect to, by ``address``, by advertised ``name``, or both (both must then match).

    ``label`` is how the gateway names the device in callbacks and records (the name, else the address).
    ``security``: "none", "encrypted" or "bonded" (``runtime.transport.security``); None gives the profile's
    default (``bonded`` for native devices, ``none`` for standard profiles).
    """

    name: str | None = None
    address: str | None = None
    profile: str = Profile.NATIVE.value  # a firmware_bridge.profiles.registry name
    security: str | None = None

    def __post_init__(self):
        from biomoe_edge.runtime.transport.security import SecurityLevel, default_security

        if self.name is None and self.address is None:
            raise ValueError("a device target needs a name or an address")
        if self.name is not None and not str(self.name).strip():
            raise ValueError("device target name is empty")
        if self.address is not None:
            object.__setattr__(self, "address", normalize_address(self.address))
        level = default_security(self.profile) if self.security is None else SecurityLevel.parse(self.security)
        object.__setattr__(self, "security", level.value)

    @property
    def label(self) -> str:
        return self.name if self.name is not None else self.address

    def matches(self, address: str | None, name: str | None) -> bool:
        if self.address is not None:
            try:
                if address is None or normalize_address(address) != self.address:
                    return False
            except ValueError:  # macOS gives UUIDs, not addresses: never equal to a configured address
                return False
        return self.name is None or name == self.name


class AllowList:
    """The configured targets; ``match(address, name)`` returns the target a device is, or None."""

    def __init__(self, targets: Iterable[DeviceTarget]) -> None:
        self.targets = tuple(targets)
        labels = [t.label for t in self.targets]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"device listed twice in the allow-list: {', '.join(duplicates)}")

    def match(self, address: str | None, name: str | None) -> DeviceTarget | None:
        for target in self.targets:
            if target.matches(address, name):
                return target
        return None

    def __contains__(self, device) -> bool:
        """``ble_device in allow_list`` for a bleak ``BLEDevice`` (or anything with .address and .name)."""
        return self.match(getattr(device, "address", None), getattr(device, "name", None)) is not None

    def __iter__(self):
        return iter(self.targets)

    def __len__(self) -> int:
        return len(self.targets)
