"""Every error the firmware bridge raises for bad bytes: one base class, one subclass per kind of problem.

A gateway catches ``PacketError`` around each notification and counts the packet as rejected; nothing
else escapes the decoders, whatever the input (the property tests and the fuzz script check that).
"""

from __future__ import annotations


class PacketError(ValueError):
    """Bytes that are not a valid packet (native protocol or a market profile). The message names the problem."""


class TruncatedPacketError(PacketError):
    """Fewer bytes than the header (or a length field) announces; e.g. a notification cut to ATT MTU - 3."""


class LengthMismatchError(PacketError):
    """More bytes than announced, or a length field that disagrees with the payload."""


class CRCError(PacketError):
    """The CRC-16/CCITT-FALSE trailer does not match the bytes before it."""


class UnsupportedVersionError(PacketError):
    """A protocol (or description) version this decoder does not know."""


class SampleFormatError(PacketError):
    """An unknown sample format code, or samples that the format cannot represent."""


class SampleCountError(PacketError):
    """A sample or channel count of zero, or over what the format allows."""


class ControlError(PacketError):
    """A malformed control-characteristic command (unknown opcode, wrong length, bad parameter).

    ``att_error`` is the ATT error code a device answers the write with (see gatt.py / PROTOCOL.md).
    """

    def __init__(self, message: str, *, att_error: int = 0x82):
        super().__init__(message)
        self.att_error = att_error


class DescriptionError(PacketError):
    """A malformed device-description characteristic value."""


class ProfileError(PacketError):
    """A malformed market-profile value (Heart Rate, PLX, Polar PMD)."""


__all__ = [
    "PacketError",
    "TruncatedPacketError",
    "LengthMismatchError",
    "CRCError",
    "UnsupportedVersionError",
    "SampleFormatError",
    "SampleCountError",
    "ControlError",
    "DescriptionError",
    "ProfileError",
]
