"""Bluetooth SIG Heart Rate Measurement (characteristic 0x2A37, Heart Rate Service 0x180D).

Value layout (Heart Rate Service 1.0, section 3.1; GATT Specification Supplement, "Heart Rate Measurement"),
little-endian::

    u8  flags  bit 0: heart rate is u16 (else u8)
               bits 1-2: sensor contact; bit 2 = feature supported, bit 1 = contact detected
               bit 3: Energy Expended present (u16, kJ)
               bit 4: RR-Interval present (u16 each, units of 1/1024 s, as many as fit)
               bits 5-7: reserved (ignored, as the spec tells receivers to)
    u8 | u16  heart rate, beats per minute
    [u16]     energy expended, kJ
    [u16 ...] RR intervals
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..exc import LengthMismatchError, TruncatedPacketError
from ..packet import as_bytes

HEART_RATE_SERVICE_UUID = "0000180d-0000-1000-8000-00805f9b34fb"
HEART_RATE_MEASUREMENT_UUID = "00002a37-0000-1000-8000-00805f9b34fb"
RR_UNITS_PER_SECOND = 1024

_FLAG_HR_U16 = 0x01
_FLAG_CONTACT_DETECTED = 0x02
_FLAG_CONTACT_SUPPORTED = 0x04
_FLAG_ENERGY = 0x08
_FLAG_RR = 0x10


@dataclass(frozen=True)
class HeartRateMeasurement:
    bpm: int
    contact: bool | None  # None: the sensor does not report contact
    energy_kj: int | None  # None: field absent
    rr_intervals_s: tuple[float, ...]  # oldest first; empty when absent


def parse_measurement(data) -> HeartRateMeasurement:
    """Decode one 0x2A37 value; PacketError subclasses for anything malformed."""
    data = as_bytes(data, "heart rate measurement")
    if len(data) < 2:
        raise TruncatedPacketError(f"heart rate measurement is {len(data)} bytes; needs flags and a heart rate")
    flags = data[0]
    offset = 1
    if flags & _FLAG_HR_U16:
        if len(data) < 3:
            raise TruncatedPacketError("heart rate measurement flags a u16 heart rate but has 1 byte for it")
        (bpm,) = struct.unpack_from("<H", data, offset)
        offset += 2
    else:
        bpm = data[offset]
        offset += 1
    contact = bool(flags & _FLAG_CONTACT_DETECTED) if flags & _FLAG_CONTACT_SUPPORTED else None
    energy_kj = None
    if flags & _FLAG_ENERGY:
        if len(data) < offset + 2:
            raise TruncatedPacketError("heart rate measurement flags Energy Expended but ends before it")
        (energy_kj,) = struct.unpack_from("<H", data, offset)
        offset += 2
    rr: tuple[float, ...] = ()
    if flags & _FLAG_RR:
        remaining = len(data) - offset
        if remaining % 2:
            raise LengthMismatchError(f"RR-Interval field has {remaining} bytes, not a whole number of u16 values")
        rr = tuple(v / RR_UNITS_PER_SECOND for v in struct.unpack_from(f"<{remaining // 2}H", data, offset))
    elif len(data) != offset:
        raise LengthMismatchError(f"heart rate measurement has {len(data) - offset} bytes after its last flagged field")
    return HeartRateMeasurement(bpm=bpm, contact=contact, energy_kj=energy_kj, rr_intervals_s=rr)


__all__ = ["HEART_RATE_SERVICE_UUID", "HEART_RATE_MEASUREMENT_UUID", "HeartRateMeasurement", "parse_measurement"]
