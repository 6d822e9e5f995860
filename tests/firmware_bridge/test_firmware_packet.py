"""Native data packet codec: layout against hand-built bytes, every malformation -> PacketError, properties."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biomoe_edge import firmware_bridge as fb
from biomoe_edge.firmware_bridge import packet as pk


def crc16_bitwise(data: bytes) -> int:
    """CRC-16/CCITT-FALSE written out bit by bit (independent of binascii.crc_hqx used by the codec)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def hand_built(stream_id, sequence, timestamp_us, fmt_code, values_bytes, n, ch, version=1) -> bytes:
    body = struct.pack("<BBHIBBB", version, stream_id, sequence, timestamp_us, fmt_code, n, ch) + values_bytes
    return body + struct.pack("<H", crc16_bitwise(body))


def test_crc_variant_check_value():
    # Catalogue of CRC algorithms (reveng): CRC-16/IBM-3740 a.k.a. CCITT-FALSE, check = 0x29B1.
    assert crc16_bitwise(b"123456789") == 0x29B1
    assert fb.packet.crc16_ccitt_false(b"123456789") == 0x29B1
    assert fb.packet.crc16_ccitt_false(b"") == 0xFFFF


def test_int16_layout_matches_hand_built_bytes():
    samples = np.array([[1, -1], [32767, -32768], [0, 256]])
    expected = hand_built(7, 513, 0x01020304, 1, struct.pack("<6h", 1, -1, 32767, -32768, 0, 256), 3, 2)
    assert fb.encode_packet(stream_id=7, sequence=513, timestamp_us=0x01020304, samples=samples, sample_format="int16") == expected
    decoded = fb.decode_packet(expected)
    assert (decoded.version, decoded.stream_id, decoded.sequence, decoded.timestamp_us) == (1, 7, 513, 0x01020304)
    assert decoded.sample_format is fb.SampleFormat.INT16
    np.testing.assert_array_equal(decoded.samples, samples)


def test_int24_sign_extension_from_hand_built_bytes():
    # -1 = FF FF FF, -8388608 = 00 00 80, 8388607 = FF FF 7F, 0x123456 = 56 34 12, -2 = FE FF FF
    payload = bytes.fromhex("ffffff" "000080" "ffff7f" "563412" "feffff")
    packet = fb.decode_packet(hand_built(0, 0, 0, 2, payload, 5, 1))
    assert packet.samples.dtype == np.int32
    np.testing.assert_array_equal(packet.samples[:, 0], [-1, -8388608, 8388607, 0x123456, -2])


def test_float32_multichannel_and_wraps():
    values = np.array([[1.5, -0.25, np.inf], [np.nan, 3.0e-38, -7.0]], dtype=np.float32)
    data = fb.encode_packet(stream_id=1, sequence=65536 + 4, timestamp_us=(1 << 32) + 9, samples=values, sample_format=3)
    assert data == hand_built(1, 4, 9, 3, values.astype("<f4").tobytes(), 2, 3)
    out = fb.decode_packet(memoryview(data)).samples
    assert out.dtype == np.float32 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, values)  # NaN positions compare equal with assert_array_equal


@pytest.mark.parametrize(
    "mutate, error, words",
    [
        (lambda b: b[:12], fb.TruncatedPacketError, "shorter"),
        (lambda b: b[:-1], fb.TruncatedPacketError, "truncated"),
        (lambda b: b + b"\x00", fb.LengthMismatchError, "announces"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), fb.CRCError, "CRC"),
        (lambda b: b[:12] + bytes([b[12] ^ 0x10]) + b[13:], fb.CRCError, "CRC"),
        (lambda b: bytes([2]) + b[1:], fb.UnsupportedVersionError, "version 2"),
        (lambda b: b[:8] + bytes([4]) + b[9:], fb.SampleFormatError, "code 4"),
        (lambda b: b[:8] + bytes([0]) + b[9:], fb.SampleFormatError, "code 0"),
        (lambda b: b[:9] + bytes([0]) + b[10:], fb.SampleCountError, "0 samples"),
        (lambda b: b[:10] + bytes([0]) + b[11:], fb.SampleCountError, "0 channels"),
        (lambda b: "not bytes", fb.PacketError, "str"),
        (lambda b: 17, fb.PacketError, "int"),
    ],
)
def test_malformed_packets_raise_the_named_error(mutate, error, words):
    good = fb.encode_packet(stream_id=3, sequence=9, timestamp_us=1000, samples=[[1, 2], [3, 4]], sample_format="int16")
    with pytest.raises(error, match=words):
        fb.decode_packet(mutate(good))


def test_truncation_to_default_mtu_is_reported_as_truncated():
    data = fb.encode_packet(stream_id=0, sequence=0, timestamp_us=0, samples=np.arange(10), sample_format="int16")
    with pytest.raises(fb.TruncatedPacketError, match="MTU of 23"):
        fb.decode_packet(data[:20])  # what a stack does to a 33-byte notification at MTU 23


@pytest.mark.parametrize(
    "samples, fmt, words",
    [
        ([40000], "int16", r"\[-32768, 32767\]"),
        ([-(1 << 23) - 1], "int24", "must lie in"),
        ([1.5], "int16", "whole numbers"),
        (np.zeros((256, 1)), "int16", "1..255"),
        (np.zeros((0, 1)), "int16", "1..255"),
        (np.zeros((2, 2, 2)), "int16", "shape"),
        ([1], "int8", "unknown sample format"),
    ],
)
def test_encoder_refuses_what_the_format_cannot_carry(samples, fmt, words):
    with pytest.raises(fb.PacketError, match=words):
        fb.encode_packet(stream_id=0, sequence=0, timestamp_us=0, samples=samples, sample_format=fmt)


def test_max_samples_per_packet_at_default_and_large_mtu():
    # MTU 23: 20-byte notification - 13 bytes overhead = 7 payload bytes.
    assert [fb.max_samples_per_packet(23, 1, f) for f in ("int16", "int24", "float32")] == [3, 2, 1]
    assert fb.max_samples_per_packet(23, 2, "int24") == 1
    assert fb.max_samples_per_packet(23, 3, "int24") == 0  # does not fit: the gateway must raise the MTU
    # MTU 247 (the usual negotiated value): 244 - 13 = 231 payload bytes.
    assert [fb.max_samples_per_packet(247, 1, f) for f in ("int16", "int24", "float32")] == [115, 77, 57]
    assert fb.max_samples_per_packet(517, 1, "int16") == 250
    with pytest.raises(ValueError):
        fb.max_samples_per_packet(22, 1, "int16")


def test_max_samples_fill_exactly_the_notification():
    for mtu in (23, 64, 185, 247, 512):
        for fmt in fb.SampleFormat:
            for channels in (1, 2, 3):
                n = fb.max_samples_per_packet(mtu, channels, fmt)
                if n == 0:
                    continue
                size = len(fb.encode_packet(stream_id=0, sequence=0, timestamp_us=0, samples=np.zeros((n, channels)), sample_format=fmt))
                assert size <= mtu - 3
                assert n == 255 or size + channels * fmt.size > mtu - 3


@st.composite
def packets(draw):
    fmt = draw(st.sampled_from(list(fb.SampleFormat)))
    n = draw(st.integers(1, 40))
    channels = draw(st.integers(1, 6))
    if fmt is fb.SampleFormat.FLOAT32:
        elements = st.floats(width=32, allow_nan=False)
    else:
        low, high = pk._INT_RANGES[fmt]
        elements = st.integers(low, high)
    values = draw(st.lists(elements, min_size=n * channels, max_size=n * channels))
    return dict(
        stream_id=draw(st.integers(0, 255)),
        sequence=draw(st.integers(0, 65535)),
        timestamp_us=draw(st.integers(0, (1 << 32) - 1)),
        samples=np.array(values, dtype=np.float64 if fmt is fb.SampleFormat.FLOAT32 else np.int64).reshape(n, channels),
        sample_format=fmt,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets())
def test_round_trip(fields):
    data = fb.encode_packet(**fields)
    assert len(data) == 13 + fields["samples"].size * fields["sample_format"].size
    packet = fb.decode_packet(bytearray(data))
    assert (packet.stream_id, packet.sequence, packet.timestamp_us) == (fields["stream_id"], fields["sequence"], fields["timestamp_us"])
    np.testing.assert_array_equal(packet.samples, fields["samples"].astype(packet.samples.dtype))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(["packet", "description"]))
def test_arbitrary_bytes_raise_only_packet_error(data, which):
    decode = {"packet": fb.decode_packet, "description": fb.decode_description}[which]
    try:
        decode(data)
    except fb.PacketError:
        pass


@settings(max_examples=150, deadline=None)
@given(packets(), st.data())
def test_any_single_corruption_is_detected(fields, data):
    good = bytearray(fb.encode_packet(**fields))
    index = data.draw(st.integers(0, len(good) - 1))
    good[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(fb.PacketError):
        fb.decode_packet(good)
