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


def encode_sfloat(value: float, *, exponent: int = -1) -> int:
    """float -> IEEE 11073 16-bit SFLOAT at ``10**exponent`` resolution (default one decimal); NaN and the
    infinities as their reserved codes. ValueError when the value does not fit a 12-bit mantissa."""
    if not -8 <= exponent <= 7:
        raise ValueError(f"SFLOAT exponent must be -8..7, got {exponent!r}")
    if math.isnan(value):
        return SFLOAT_NAN
    if math.isinf(value):
        return SFLOAT_POSITIVE_INFINITY if value > 0 else SFLOAT_NEGATIVE_INFINITY
    mantissa = int(round(value * 10**-exponent if exponent < 0 else value / 10**exponent))
    if not -2046 < mantissa < 2046:  # +-2046..2047 and -2048 are the NaN, NRes, infinity and reserved codes
        raise ValueError(f"{value!r} does not fit an SFLOAT at 10**{exponent}")
    return ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)


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

    def __bytes__(self) -> bytes:
        return encode_continuous(self)


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
    return PlxContinuousMeasurement(spo2, pulse_rate, spo2_fast, pulse_rate_fast, spo2_slow, pulse_rate_slow, status,
                                    sensor_status, pulse_amplitude_index)


def encode_continuous(measurement: PlxContinuousMeasurement) -> bytes:
    """The 0x2A5F value of ``measurement``, as ``parse_continuous`` reads it: each optional field present when it is
    not None (the fast and slow pairs as pairs), every SFLOAT with one decimal. ValueError for a field that does
    not fit."""
    m = measurement
    fast = (m.spo2_fast, m.pulse_rate_fast)
    slow = (m.spo2_slow, m.pulse_rate_slow)
    for name, pair in (("fast", fast), ("slow", slow)):
        if (pair[0] is None) != (pair[1] is None):
            raise ValueError(f"SpO2PR-{name.title()} needs both SpO2 and pulse rate, or neither")
    if m.status is not None and not 0 <= m.status <= 0xFFFF:
        raise ValueError(f"measurement status {m.status!r} does not fit a u16")
    if m.sensor_status is not None and not 0 <= m.sensor_status <= 0xFFFFFF:
        raise ValueError(f"device and sensor status {m.sensor_status!r} does not fit a u24")
    flags = ((_FLAG_FAST if fast[0] is not None else 0) | (_FLAG_SLOW if slow[0] is not None else 0)
             | (_FLAG_STATUS if m.status is not None else 0) | (_FLAG_SENSOR_STATUS if m.sensor_status is not None else 0)
             | (_FLAG_PAI if m.pulse_amplitude_index is not None else 0))
    sfloats = [m.spo2, m.pulse_rate] + [v for pair in (fast, slow) if pair[0] is not None for v in pair]
    value = bytes([flags]) + b"".join(encode_sfloat(v).to_bytes(2, "little") for v in sfloats)
    if m.status is not None:
        value += m.status.to_bytes(2, "little")
    if m.sensor_status is not None:
        value += m.sensor_status.to_bytes(3, "little")
    if m.pulse_amplitude_index is not None:
        value += encode_sfloat(m.pulse_amplitude_index).to_bytes(2, "little")
    return value


def emulated_measurement(vitals) -> bytes:
    """What an emulated pulse oximeter notifies once a second for ``vitals`` (``spo2``, ``bpm``): SpO2 and pulse
    rate with one decimal, no optional field."""
    return encode_continuous(PlxContinuousMeasurement(
        spo2=vitals.spo2, pulse_rate=vitals.bpm, spo2_fast=None, pulse_rate_fast=None, spo2_slow=None,
        pulse_rate_slow=None, status=None, sensor_status=None, pulse_amplitude_index=None))


__all__ = [
    "PULSE_OXIMETER_SERVICE_UUID",
    "PLX_CONTINUOUS_MEASUREMENT_UUID",
    "SFLOAT_SPECIAL",
    "decode_sfloat",
    "encode_sfloat",
    "PlxContinuousMeasurement",
    "parse_continuous",
    "encode_continuous",
    "emulated_measurement",
]
