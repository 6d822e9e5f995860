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

    def __bytes__(self) -> bytes:
        return encode_measurement(self)


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


def encode_measurement(measurement: HeartRateMeasurement) -> bytes:
    """The 0x2A37 value of ``measurement``, as ``parse_measurement`` reads it: a u8 heart rate up to 255 bpm
    (else u16), the contact flags unless ``contact`` is None, Energy Expended unless None, the RR intervals
    rounded to 1/1024 s. ValueError for a field out of its range."""
    bpm, energy, rr = measurement.bpm, measurement.energy_kj, measurement.rr_intervals_s
    if not 0 <= bpm <= 0xFFFF:
        raise ValueError(f"heart rate {bpm!r} bpm does not fit a u16")
    if energy is not None and not 0 <= energy <= 0xFFFF:
        raise ValueError(f"energy expended {energy!r} kJ does not fit a u16")
    rr_units = [int(round(r * RR_UNITS_PER_SECOND)) for r in rr]
    if not all(0 <= u <= 0xFFFF for u in rr_units):
        raise ValueError(f"RR intervals {rr!r} do not fit u16 values of 1/{RR_UNITS_PER_SECOND} s")
    flags = (_FLAG_HR_U16 if bpm > 0xFF else 0) | (_FLAG_ENERGY if energy is not None else 0) | (_FLAG_RR if rr else 0)
    if measurement.contact is not None:
        flags |= _FLAG_CONTACT_SUPPORTED | (_FLAG_CONTACT_DETECTED if measurement.contact else 0)
    value = bytes([flags]) + int(bpm).to_bytes(2 if bpm > 0xFF else 1, "little")
    if energy is not None:
        value += int(energy).to_bytes(2, "little")
    return value + struct.pack(f"<{len(rr_units)}H", *rr_units)


#: RR intervals an emulated strap sends per measurement: 9 fit a 20-byte notification (ATT MTU 23) with a u8 bpm.
EMULATED_RR_PER_MEASUREMENT = 9


def emulated_measurement(vitals) -> bytes:
    """What an emulated chest strap notifies once a second for ``vitals`` (``bpm``, ``rr_intervals_s`` of the
    beats since the last measurement): the bpm rounded, contact detected, the newest RR intervals that fit."""
    rr = tuple(vitals.rr_intervals_s)[-EMULATED_RR_PER_MEASUREMENT:]
    return encode_measurement(HeartRateMeasurement(bpm=round(vitals.bpm), contact=True, energy_kj=None, rr_intervals_s=rr))


__all__ = [
    "HEART_RATE_SERVICE_UUID",
    "HEART_RATE_MEASUREMENT_UUID",
    "HeartRateMeasurement",
    "parse_measurement",
    "encode_measurement",
    "emulated_measurement",
]
