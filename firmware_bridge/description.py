"""The device-description characteristic (PROTOCOL.md, "Device description"): what a wearable streams.

Layout, little-endian::

    u8  description version (1)
    u8  firmware-version length F, then F bytes UTF-8
    u8  stream count S (1..16), then S stream records:
        u8  stream_id            u8  sample_format (1 int16, 2 int24, 3 float32)
        u8  channels (1..255)    f64 sample_rate_hz (> 0)
        f64 scale                f64 offset          (physical = raw * scale + offset)
        u8  modality length M, M bytes UTF-8 ("ecg", "bvp", "eda", "resp", "spo2", ...)
        u8  units length U, U bytes UTF-8 ("mV", "uS", "%", ...)
    u16 CRC-16/CCITT-FALSE over every byte before it
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from .exc import CRCError, DescriptionError, TruncatedPacketError, UnsupportedVersionError
from .packet import SampleFormat, as_bytes, crc16_ccitt_false

DESCRIPTION_VERSION = 1
MAX_STREAMS = 16
_STREAM_FIXED = struct.Struct("<BBBddd")


@dataclass(frozen=True)
class StreamDescription:
    """One stream a device offers. Physical value = raw * scale + offset, in ``units``."""

    stream_id: int
    modality: str
    sample_rate_hz: float
    channels: int = 1
    sample_format: SampleFormat = SampleFormat.INT16
    scale: float = 1.0
    offset: float = 0.0
    units: str = ""

    def __post_init__(self):
        object.__setattr__(self, "sample_format", SampleFormat.parse(self.sample_format))
        if not 0 <= int(self.stream_id) <= 255:
            raise DescriptionError(f"stream_id must be 0..255, got {self.stream_id!r}")
        if not 1 <= int(self.channels) <= 255:
            raise DescriptionError(f"stream {self.stream_id}: channels must be 1..255, got {self.channels!r}")
        if not (math.isfinite(self.sample_rate_hz) and self.sample_rate_hz > 0):
            raise DescriptionError(f"stream {self.stream_id}: sample_rate_hz must be > 0, got {self.sample_rate_hz!r}")
        if not (math.isfinite(self.scale) and math.isfinite(self.offset)):
            raise DescriptionError(f"stream {self.stream_id}: scale and offset must be finite")
        for name in ("modality", "units"):
            if len(getattr(self, name).encode("utf-8")) > 255:
                raise DescriptionError(f"stream {self.stream_id}: {name} longer than 255 UTF-8 bytes")
        if not self.modality:
            raise DescriptionError(f"stream {self.stream_id}: modality is empty")


@dataclass(frozen=True)
class DeviceDescription:
    """What the device-description characteristic holds."""

    firmware_version: str
    streams: tuple[StreamDescription, ...]

    def __post_init__(self):
        object.__setattr__(self, "streams", tuple(self.streams))
        if not 1 <= len(self.streams) <= MAX_STREAMS:
            raise DescriptionError(f"a device describes 1..{MAX_STREAMS} streams, got {len(self.streams)}")
        ids = [s.stream_id for s in self.streams]
        if len(set(ids)) != len(ids):
            raise DescriptionError(f"stream ids must be unique, got {ids}")
        if len(self.firmware_version.encode("utf-8")) > 255:
            raise DescriptionError("firmware_version longer than 255 UTF-8 bytes")

    def stream(self, stream_id: int) -> StreamDescription:
        """The stream with that id; KeyError naming the known ids otherwise."""
        for s in self.streams:
            if s.stream_id == stream_id:
                return s
        raise KeyError(f"no stream {stream_id}; the device describes {[s.stream_id for s in self.streams]}")


def _short_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return bytes([len(raw)]) + raw


def encode_description(desc: DeviceDescription) -> bytes:
    """DeviceDescription -> characteristic value (longer than MTU - 1: the gateway reads it with Read Blob)."""
    out = bytearray([DESCRIPTION_VERSION])
    out += _short_string(desc.firmware_version)
    out.append(len(desc.streams))
    for s in desc.streams:
        out += _STREAM_FIXED.pack(
            s.stream_id, int(s.sample_format), s.channels, float(s.sample_rate_hz), float(s.scale), float(s.offset)
        )
        out += _short_string(s.modality)
        out += _short_string(s.units)
    out += struct.pack("<H", crc16_ccitt_false(bytes(out)))
    return bytes(out)


class _Reader:
    """Cursor over a description value; every overrun is a TruncatedPacketError."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, size: int, what: str) -> bytes:
        if self.pos + size > len(self.data):
            raise TruncatedPacketError(f"description truncated in {what} (byte {self.pos}, needs {size} more)")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def string(self, what: str) -> str:
        (length,) = self.take(1, f"{what} length")
        try:
            return self.take(length, what).decode("utf-8")
        except UnicodeDecodeError:
            raise DescriptionError(f"description: {what} is not valid UTF-8") from None


def decode_description(data) -> DeviceDescription:
    """Characteristic value -> DeviceDescription; a PacketError subclass naming the problem otherwise."""
    data = as_bytes(data, "description")
    if len(data) < 3:
        raise TruncatedPacketError(f"description is {len(data)} bytes, too short for version + CRC")
    (crc_received,) = struct.unpack_from("<H", data, len(data) - 2)
    crc_computed = crc16_ccitt_false(data[:-2])
    if data[0] != DESCRIPTION_VERSION:
        raise UnsupportedVersionError(f"description version {data[0]} is not supported (this decoder reads 1)")
    if crc_received != crc_computed:
        raise CRCError(f"description CRC mismatch: value says 0x{crc_received:04X}, bytes give 0x{crc_computed:04X}")
    reader = _Reader(data[:-2])
    reader.take(1, "version")
    firmware_version = reader.string("firmware version")
    (count,) = reader.take(1, "stream count")
    streams = []
    for index in range(count):
        fixed = reader.take(_STREAM_FIXED.size, f"stream record {index}")
        stream_id, format_code, channels, rate, scale, offset = _STREAM_FIXED.unpack(fixed)
        modality = reader.string(f"stream {stream_id} modality")
        units = reader.string(f"stream {stream_id} units")
        try:
            fmt = SampleFormat(format_code)
        except ValueError:
            raise DescriptionError(f"stream {stream_id}: unknown sample format code {format_code}") from None
        streams.append(StreamDescription(stream_id, modality, rate, channels, fmt, scale, offset, units))
    if reader.pos != len(reader.data):
        raise DescriptionError(f"description has {len(reader.data) - reader.pos} trailing bytes before the CRC")
    return DeviceDescription(firmware_version, tuple(streams))


__all__ = ["DESCRIPTION_VERSION", "StreamDescription", "DeviceDescription", "encode_description", "decode_description"]
