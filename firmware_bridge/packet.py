"""The native data packet (PROTOCOL.md, "Data packet"): bytes <-> samples, vectorised with NumPy.

Layout, little-endian, 11-byte header + payload + 2-byte CRC::

    0  u8   version (1)
    1  u8   stream_id
    2  u16  sequence (wraps 65535 -> 0)
    4  u32  timestamp_us of the first sample, device clock (wraps every 2**32 us = 71.6 min)
    8  u8   sample_format (1 int16, 2 int24, 3 float32)
    9  u8   sample_count (samples per channel, >= 1)
    10 u8   channel_count (>= 1)
    11 ...  payload: sample-major, channel-minor (s0c0 s0c1 .. s1c0 ..), sample_count*channel_count values
    -2 u16  CRC-16/CCITT-FALSE over every byte before it
"""

from __future__ import annotations

import binascii
import enum
import struct
from dataclasses import dataclass

import numpy as np

from .exc import (
    CRCError,
    LengthMismatchError,
    PacketError,
    SampleCountError,
    SampleFormatError,
    TruncatedPacketError,
    UnsupportedVersionError,
)

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBHIBBB")
HEADER_SIZE = HEADER.size  # 11
CRC_SIZE = 2
OVERHEAD = HEADER_SIZE + CRC_SIZE  # 13
ATT_DEFAULT_MTU = 23
ATT_NOTIFY_OVERHEAD = 3  # opcode + attribute handle: a notification carries at most MTU - 3 bytes
MAX_SAMPLE_COUNT = 255
MAX_CHANNELS = 255
SEQUENCE_MODULO = 1 << 16
TIMESTAMP_MODULO = 1 << 32


class SampleFormat(enum.IntEnum):
    """How one sample value is stored in the payload (code 0 is reserved: a zeroed buffer is not a packet)."""

    INT16 = 1
    INT24 = 2
    FLOAT32 = 3

    @property
    def size(self) -> int:
        """Bytes per value."""
        return _SIZES[self]

    @classmethod
    def parse(cls, value) -> SampleFormat:
        """Accept a SampleFormat, its code, or its name in any case ("int24")."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        else:
            try:
                return cls(int(value))
            except (ValueError, TypeError):
                pass
        raise SampleFormatError(f"unknown sample format {value!r}; expected one of: int16, int24, float32")


_SIZES = {SampleFormat.INT16: 2, SampleFormat.INT24: 3, SampleFormat.FLOAT32: 4}
_INT_RANGES = {SampleFormat.INT16: (-(1 << 15), (1 << 15) - 1), SampleFormat.INT24: (-(1 << 23), (1 << 23) - 1)}


def crc16_ccitt_false(data) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR; check("123456789") = 0x29B1.

    ``binascii.crc_hqx`` is exactly this CRC when seeded with 0xFFFF (and runs in C).
    """
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True, eq=False)
class Packet:
    """One decoded data packet. ``samples`` is (sample_count, channels): int32 raw values for the integer
    formats, float32 for FLOAT32. Physical value = raw * scale + offset (from the stream's description)."""

    version: int
    stream_id: int
    sequence: int
    timestamp_us: int
    sample_format: SampleFormat
    samples: np.ndarray

    @property
    def sample_count(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])


def max_samples_per_packet(mtu: int, channels: int, sample_format) -> int:
    """Samples per channel that fit one notification at ATT MTU ``mtu`` (value <= mtu - 3); 0 if none fits.

    At the default MTU 23 (20-byte value, 7 bytes of payload) with one channel: 3 int16, 2 int24, 1 float32.
    """
    if int(mtu) < ATT_DEFAULT_MTU:
        raise ValueError(f"ATT MTU is at least {ATT_DEFAULT_MTU}, got {mtu!r}")
    if not 1 <= int(channels) <= MAX_CHANNELS:
        raise ValueError(f"channels must be 1..{MAX_CHANNELS}, got {channels!r}")
    room = int(mtu) - ATT_NOTIFY_OVERHEAD - OVERHEAD
    return max(0, min(MAX_SAMPLE_COUNT, room // (int(channels) * SampleFormat.parse(sample_format).size)))


def _as_sample_matrix(samples, sample_format: SampleFormat) -> np.ndarray:
    """(n,) or (n, channels) -> (n, channels) little-endian array of the wire dtype; raise on what cannot fit."""
    array = np.asarray(samples)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise SampleCountError(f"samples must be (n,) or (n, channels), got shape {array.shape}")
    n, channels = array.shape
    if not 1 <= n <= MAX_SAMPLE_COUNT:
        raise SampleCountError(f"sample count must be 1..{MAX_SAMPLE_COUNT} per packet, got {n}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise SampleCountError(f"channel count must be 1..{MAX_CHANNELS}, got {channels}")
    if sample_format is SampleFormat.FLOAT32:
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise SampleFormatError(f"float32 samples must be numbers, got dtype {array.dtype}")
        return array.astype("<f4")
    low, high = _INT_RANGES[sample_format]
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.rint(array)):
            raise SampleFormatError(f"{sample_format.name.lower()} samples must be whole numbers")
    elif not np.issubdtype(array.dtype, np.integer):
        raise SampleFormatError(f"{sample_format.name.lower()} samples must be integers, got dtype {array.dtype}")
    if array.size and (array.min() < low or array.max() > high):
        raise SampleFormatError(
            f"{sample_format.name.lower()} samples must lie in [{low}, {high}], got [{array.min()}, {array.max()}]"
        )
    return array.astype("<i4")


def encode_packet(*, stream_id: int, sequence: int, timestamp_us: int, samples, sample_format) -> bytes:
    """Build one packet. ``sequence`` is taken modulo 65536 and ``timestamp_us`` modulo 2**32 (both wrap)."""
    sample_format = SampleFormat.parse(sample_format)
    if not 0 <= int(stream_id) <= 255:
        raise ValueError(f"stream_id must be 0..255, got {stream_id!r}")
    matrix = _as_sample_matrix(samples, sample_format)
    n, channels = matrix.shape
    if sample_format is SampleFormat.INT16:
        payload = matrix.astype("<i2").tobytes()
    elif sample_format is SampleFormat.INT24:
        # The low three bytes of each little-endian int32 are the int24 two's complement.
        payload = matrix.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        payload = matrix.tobytes()
    header = HEADER.pack(
        PROTOCOL_VERSION,
        int(stream_id),
        int(sequence) % SEQUENCE_MODULO,
        int(timestamp_us) % TIMESTAMP_MODULO,
        int(sample_format),
        n,
        channels,
    )
    body = header + payload
    return body + struct.pack("<H", crc16_ccitt_false(body))


def as_bytes(data, what: str = "packet") -> bytes:
    """bytes / bytearray / memoryview -> bytes; anything else is a PacketError (never ``bytes(int)``)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        try:
            return bytes(data)
        except (TypeError, ValueError, BufferError) as error:
            raise PacketError(f"{what}: unreadable buffer ({error})") from None
    raise PacketError(f"{what} must be bytes, bytearray or memoryview, got {type(data).__name__}")


def decode_packet(data) -> Packet:
    """Parse one packet; raise a PacketError subclass naming the problem for anything malformed."""
    data = as_bytes(data)
    if len(data) < OVERHEAD:
        raise TruncatedPacketError(f"packet is {len(data)} bytes, shorter than the {OVERHEAD}-byte header + CRC")
    version, stream_id, sequence, timestamp_us, format_code, n, channels = HEADER.unpack_from(data)
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersionError(f"protocol version {version} is not supported (this decoder reads 1)")
    try:
        sample_format = SampleFormat(format_code)
    except ValueError:
        raise SampleFormatError(f"unknown sample format code {format_code} (1 int16, 2 int24, 3 float32)") from None
    if n == 0 or channels == 0:
        raise SampleCountError(f"packet announces {n} samples x {channels} channels; both must be >= 1")
    expected = OVERHEAD + n * channels * sample_format.size
    if len(data) < expected:
        raise TruncatedPacketError(
            f"packet is {len(data)} bytes but its header announces {expected} ({n} {sample_format.name.lower()} "
            f"samples x {channels} channels); truncated, e.g. by an ATT MTU of {len(data) + ATT_NOTIFY_OVERHEAD}"
        )
    if len(data) > expected:
        raise LengthMismatchError(
            f"packet is {len(data)} bytes but its header announces {expected} ({n} samples x {channels} channels)"
        )
    (crc_received,) = struct.unpack_from("<H", data, expected - CRC_SIZE)
    crc_computed = crc16_ccitt_false(data[: expected - CRC_SIZE])
    if crc_received != crc_computed:
        raise CRCError(f"CRC mismatch: packet says 0x{crc_received:04X}, bytes give 0x{crc_computed:04X}")
    payload = np.frombuffer(data, dtype=np.uint8, count=expected - OVERHEAD, offset=HEADER_SIZE)
    if sample_format is SampleFormat.INT16:
        values = payload.view("<i2").astype(np.int32)
    elif sample_format is SampleFormat.INT24:
        # Place each 3-byte value in the top three bytes of a little-endian int32 (byte view), then shift
        # right by 8: the arithmetic shift sign-extends bit 23.
        triplets = payload.reshape(-1, 3)
        widened = np.zeros((triplets.shape[0], 4), dtype=np.uint8)
        widened[:, 1:] = triplets
        values = (widened.view("<i4").reshape(-1) >> 8).astype(np.int32)
    else:
        values = payload.view("<f4").astype(np.float32)
    return Packet(
        version=version,
        stream_id=stream_id,
        sequence=sequence,
        timestamp_us=timestamp_us,
        sample_format=sample_format,
        samples=values.reshape(n, channels),
    )


__all__ = [
    "PROTOCOL_VERSION",
    "HEADER_SIZE",
    "OVERHEAD",
    "ATT_DEFAULT_MTU",
    "SampleFormat",
    "Packet",
    "crc16_ccitt_false",
    "encode_packet",
    "decode_packet",
    "max_samples_per_packet",
]
