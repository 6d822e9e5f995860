"""GATT definitions of the native protocol (PROTOCOL.md, "GATT service" and "Control"): UUIDs, control codec.

No BLE stack here: the Bumble emulator and the bleak transport both build on these names.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass

from .exc import ControlError
from .packet import as_bytes

#: One custom 128-bit service; its characteristics share the base and differ in the first 32 bits.
SERVICE_UUID = "0b10e000-7f2d-4c89-9a65-3e5d1c0b7a01"
DATA_CHAR_UUID = "0b10e001-7f2d-4c89-9a65-3e5d1c0b7a01"  # notify: data packets (packet.py)
CONTROL_CHAR_UUID = "0b10e002-7f2d-4c89-9a65-3e5d1c0b7a01"  # write with response: control commands
DESCRIPTION_CHAR_UUID = "0b10e003-7f2d-4c89-9a65-3e5d1c0b7a01"  # read (long): device description

#: stream_id in START/STOP/CONFIGURE meaning every stream of the device.
ALL_STREAMS = 0xFF

# ATT error codes a device answers a bad control write with (0x80-0x9F is the ATT "application error" range;
# 0x0D is the core spec's Invalid Attribute Value Length).
ATT_ERROR_INVALID_LENGTH = 0x0D
ATT_ERROR_UNKNOWN_OPCODE = 0x80
ATT_ERROR_UNKNOWN_STREAM = 0x81
ATT_ERROR_INVALID_PARAMETER = 0x82
ATT_ERROR_MTU_TOO_SMALL = 0x83  # START refused: not one sample of the stream fits MTU - 3 bytes
ATT_ERROR_BUSY = 0x84  # CONFIGURE refused: the stream is running (STOP it first)


class ControlOpcode(enum.IntEnum):
    START = 0x01
    STOP = 0x02
    CONFIGURE = 0x03


_START_STOP = struct.Struct("<BB")  # opcode, stream_id
_CONFIGURE = struct.Struct("<BBfB")  # opcode, stream_id, sample_rate_hz (0 = keep), samples_per_packet (0 = auto)


@dataclass(frozen=True)
class ControlCommand:
    """A decoded control write. For CONFIGURE, None means "keep the current value" (0 on the wire)."""

    opcode: ControlOpcode
    stream_id: int = ALL_STREAMS
    sample_rate_hz: float | None = None
    samples_per_packet: int | None = None


def encode_control(opcode, stream_id: int = ALL_STREAMS, *, sample_rate_hz=None, samples_per_packet=None) -> bytes:
    """Build a control write: START/STOP are 2 bytes, CONFIGURE 7 (see PROTOCOL.md)."""
    try:
        opcode = ControlOpcode(opcode)
    except ValueError:
        raise ControlError(f"unknown control opcode {opcode!r}", att_error=ATT_ERROR_UNKNOWN_OPCODE) from None
    if not 0 <= int(stream_id) <= 255:
        raise ControlError(f"stream_id must be 0..255, got {stream_id!r}", att_error=ATT_ERROR_UNKNOWN_STREAM)
    if opcode is not ControlOpcode.CONFIGURE:
        if sample_rate_hz is not None or samples_per_packet is not None:
            raise ControlError(f"{opcode.name} takes no parameters", att_error=ATT_ERROR_INVALID_PARAMETER)
        return _START_STOP.pack(int(opcode), int(stream_id))
    rate = 0.0 if sample_rate_hz is None else float(sample_rate_hz)
    count = 0 if samples_per_packet is None else int(samples_per_packet)
    if not (math.isfinite(rate) and rate >= 0):
        raise ControlError(f"sample_rate_hz must be > 0, got {sample_rate_hz!r}", att_error=ATT_ERROR_INVALID_PARAMETER)
    if not 0 <= count <= 255:
        raise ControlError(
            f"samples_per_packet must be 1..255, got {samples_per_packet!r}", att_error=ATT_ERROR_INVALID_PARAMETER
        )
    return _CONFIGURE.pack(int(opcode), int(stream_id), rate, count)


def decode_control(data) -> ControlCommand:
    """Parse a control write; ControlError (a PacketError) carrying the ATT error code to answer otherwise."""
    data = as_bytes(data, "control command")
    if not data:
        raise ControlError("empty control command", att_error=ATT_ERROR_INVALID_LENGTH)
    try:
        opcode = ControlOpcode(data[0])
    except ValueError:
        raise ControlError(f"unknown control opcode 0x{data[0]:02X}", att_error=ATT_ERROR_UNKNOWN_OPCODE) from None
    layout = _CONFIGURE if opcode is ControlOpcode.CONFIGURE else _START_STOP
    if len(data) != layout.size:
        raise ControlError(
            f"{opcode.name} is {layout.size} bytes, got {len(data)}", att_error=ATT_ERROR_INVALID_LENGTH
        )
    if opcode is not ControlOpcode.CONFIGURE:
        return ControlCommand(opcode, data[1])
    _, stream_id, rate, count = layout.unpack(data)
    if not (math.isfinite(rate) and rate >= 0):
        raise ControlError(f"CONFIGURE sample_rate_hz {rate!r} is not >= 0", att_error=ATT_ERROR_INVALID_PARAMETER)
    return ControlCommand(opcode, stream_id, rate if rate > 0 else None, count if count > 0 else None)


__all__ = [
    "SERVICE_UUID",
    "DATA_CHAR_UUID",
    "CONTROL_CHAR_UUID",
    "DESCRIPTION_CHAR_UUID",
    "ALL_STREAMS",
    "ATT_ERROR_INVALID_LENGTH",
    "ATT_ERROR_UNKNOWN_OPCODE",
    "ATT_ERROR_UNKNOWN_STREAM",
    "ATT_ERROR_INVALID_PARAMETER",
    "ATT_ERROR_MTU_TOO_SMALL",
    "ATT_ERROR_BUSY",
    "ControlOpcode",
    "ControlCommand",
    "encode_control",
    "decode_control",
]
