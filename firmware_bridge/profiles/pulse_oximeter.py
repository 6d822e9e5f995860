"""Bluetooth SIG Pulse Oximeter: PLX Continuous Measurement (characteristic 0x2A5F, service 0x1822).

Value layout (Pulse Oximeter Service 1.0, section 3.2; GATT Specification Supplement, "PLX Continuous
Measurement"), little-endian::

    u8     flags  bit 0: SpO2PR-Fast present      bit 1: SpO2PR-Slow present
                  bit 2: Measurement Status present  bit 3: Device and Sensor Status present
                  bit 4: Pulse Amplitude Index present   bits 5-7: reserved (ignored)
    SFLOAT SpO2PR-Normal SpO2 (%)        SFLOAT SpO2PR-Normal PR (beats/min)
    [SFLOAT SpO2 fast, SFLOAT PR fast]   [SFLOAT SpO2 slow, SFLOAT PR slow]
    [u16 measurement status]  [u24 device and sensor status]  [SFLOAT pulse amplitude index (%)]

SFLOAT (IEEE 11073-20601 16-bit float): value = mantissa * 10**exponent, a signed 4-bit exponent in the top
nibble and a signed 12-bit mantissa below. Reserved raw values: 0x07FF NaN, 0x0800 NRes (not at this
resolution), 0x07FE +INFINITY, 0x0802 -INFINITY, 0x0801 reserved for future use.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from ..exc import LengthMismatchError, ProfileError, TruncatedPacketError
from ..packet import as_bytes

PULSE_OXIMETER_SERVICE_UUID = "00001822-0000-1000-8000-00805f9b34fb"
PLX_CONTINUOUS_MEASUREMENT_UUID = "00002a5f-0000-1000-8000-00805f9b34fb"

SFLOAT_NAN = 0x07FF
SFLOAT_NRES = 0x0800
SFLOAT_POSITIVE_INFINITY = 0x07FE
SFLOAT_NEGATIVE_INFINITY = 0x0802
SFLOAT_RESERVED = 0x0801
#: Reserved SFLOAT values and what they mean; decode_sfloat gives NaN for all but the two infinities.
SFLOAT_SPECIAL = {
    SFLOAT_NAN: "NaN",
    SFLOAT_NRES: "NRes",
    SFLOAT_POSITIVE_INFINITY: "+INF",
    SFLOAT_NEGATIVE_INFINITY: "-INF",
    SFLOAT_RESERVED: "reserved",
}

_FLAG_FAST = 0x01
_FLAG_SLOW = 0x02
_FLAG_STATUS = 0x04
_FLAG_SENSOR_STATUS = 0x08
_FLAG_PAI = 0x10


def decode_sfloat(raw: int) -> float:
    """IEEE 11073 16-bit SFLOAT -> float; NaN for NaN, NRes and the reserved value, +/-inf for the infinities."""
    if not isinstance(raw, int) or not 0 <= raw <= 0xFFFF:
        raise ProfileError(f"SFLOAT is a 16-bit unsigned value, got {raw!r}")
    if raw == SFLOAT_POSITIVE_INFINITY:
        return math.inf
    if raw == SFLOAT_NEGATIVE_INFINITY:
        return -math.inf
    if raw in SFLOAT_SPECIAL:
        return math.nan
    mantissa = raw & 0x0FFF
    exponent = raw >> 12
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    if exponent >= 0x8:
        exponent -= 0x10
    # Exact decimal scaling: 10**-n is not exact in binary, so divide instead of multiplying by it.
    return float(mantissa * 10**exponent) if exponent >= 0 else mantissa / 10 ** (-exponent)


@dataclass(frozen=True)
class PlxContinuousMeasurement:
    spo2: float
    pulse_rate: float
    spo2_fast: float | None
    pulse_rate_fast: float | None
    spo2_slow: float | None
    pulse_rate_slow: float | None
    status: int | None  # Measurement Status bit field (u16)
    sensor_status: int | None  # Device and Sensor Status bit field (u24)
    pulse_amplitude_index: float | None


def parse_continuous(data) -> PlxContinuousMeasurement:
    """Decode one 0x2A5F value; PacketError subclasses for anything malformed."""
    data = as_bytes(data, "PLX continuous measurement")
    if not data:
        raise TruncatedPacketError("PLX continuous measurement is empty")
    flags = data[0]
    expected = 1 + 4
    expected += 4 if flags & _FLAG_FAST else 0
    expected += 4 if flags & _FLAG_SLOW else 0
    expected += 2 if flags & _FLAG_STATUS else 0
    expected += 3 if flags & _FLAG_SENSOR_STATUS else 0
    expected += 2 if flags & _FLAG_PAI else 0
    if len(data) < expected:
        raise TruncatedPacketError(f"PLX continuous measurement is {len(data)} bytes; flags 0x{flags:02X} need {expected}")
    if len(data) > expected:
        raise LengthMismatchError(f"PLX continuous measurement is {len(data)} bytes; flags 0x{flags:02X} need {expected}")
    offset = 1

    def sfloat() -> float:
        nonlocal offset
        (raw,) = struct.unpack_from("<H", data, offset)
        offset += 2
        return decode_sfloat(raw)

    spo2, pulse_rate = sfloat(), sfloat()
    spo2_fast = pulse_rate_fast = spo2_slow = pulse_rate_slow = None
    if flags & _FLAG_FAST:
        spo2_fast, pulse_rate_fast = sfloat(), sfloat()
    if flags & _FLAG_SLOW:
        spo2_slow, pulse_rate_slow = sfloat(), sfloat()
    status = sensor_status = None
    if flags & _FLAG_STATUS:
        (status,) = struct.unpack_from("<H", data, offset)
        offset += 2
    if flags & _FLAG_SENSOR_STATUS:
        sensor_status = int.from_bytes(data[offset : offset + 3], "little")
        offset += 3
    pulse_amplitude_index = sfloat() if flags & _FLAG_PAI else None
    return PlxContinuousMeasurement(
        spo2=spo2,
        pulse_rate=pulse_rate,
        spo2_fast=spo2_fast,
        pulse_rate_fast=pulse_rate_fast,
        spo2_slow=spo2_slow,
        pulse_rate_slow=pulse_rate_slow,
        status=status,
        sensor_status=sensor_status,
        pulse_amplitude_index=pulse_amplitude_index,
    )


__all__ = [
    "PULSE_OXIMETER_SERVICE_UUID",
    "PLX_CONTINUOUS_MEASUREMENT_UUID",
    "SFLOAT_SPECIAL",
    "decode_sfloat",
    "PlxContinuousMeasurement",
    "parse_continuous",
]
