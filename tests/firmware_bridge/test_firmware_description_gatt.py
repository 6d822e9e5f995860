"""Device-description value and control-characteristic commands: hand-built bytes and errors (arbitrary bytes: test_firmware_packet.py)."""

from __future__ import annotations

import struct

import pytest

from biomoe_edge import firmware_bridge as fb
from biomoe_edge.firmware_bridge import gatt

DEVICE = fb.DeviceDescription(
    "1.4.2",
    (
        fb.StreamDescription(0, "ecg", 130.0, 1, "int24", 0.001, 0.0, "mV"),
        fb.StreamDescription(3, "eda", 4.0, 1, "int16", 0.01, -1.5, "µS"),
        fb.StreamDescription(5, "bvp", 64.0, 2, "float32", 1.0, 0.0, ""),
    ),
)


def test_description_layout_matches_hand_built_bytes():
    body = b"\x01" + b"\x055.0.1" + b"\x01" + struct.pack("<BBBddd", 9, 2, 3, 25.0, 0.5, 2.0) + b"\x04resp" + b"\x02mV"
    value = body + struct.pack("<H", fb.packet.crc16_ccitt_false(body))
    desc = fb.DeviceDescription("5.0.1", (fb.StreamDescription(9, "resp", 25.0, 3, "int24", 0.5, 2.0, "mV"),))
    assert fb.encode_description(desc) == value
    assert fb.decode_description(bytearray(value)) == desc


def test_description_round_trip_with_utf8_units():
    value = fb.encode_description(DEVICE)
    assert len(value) > 20  # longer than one MTU-23 read: a central reads it with Read Blob
    decoded = fb.decode_description(value)
    assert decoded == DEVICE
    assert decoded.stream(3).units == "µS"
    with pytest.raises(KeyError, match=r"\[0, 3, 5\]"):
        decoded.stream(1)


@pytest.mark.parametrize(
    "mutate, error, words",
    [
        (lambda b: b[:2], fb.TruncatedPacketError, "too short"),
        (lambda b: b"\x02" + b[1:], fb.UnsupportedVersionError, "version 2"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 0xFF]), fb.CRCError, "CRC"),
        (lambda b: 5, fb.PacketError, "int"),
    ],
)
def test_malformed_description(mutate, error, words):
    with pytest.raises(error, match=words):
        fb.decode_description(mutate(fb.encode_description(DEVICE)))


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<H", fb.packet.crc16_ccitt_false(body))


@pytest.mark.parametrize(
    "body, error, words",
    [
        (b"\x01\x03abc\x01" + struct.pack("<BBBddd", 0, 1, 1, 10.0, 1.0, 0.0) + b"\x03ecg", fb.TruncatedPacketError, "units length"),
        (b"\x01\x03abc\x01" + struct.pack("<BBBddd", 0, 7, 1, 10.0, 1.0, 0.0) + b"\x03ecg\x00", fb.DescriptionError, "format code 7"),
        (b"\x01\x03abc\x01" + struct.pack("<BBBddd", 0, 1, 1, -1.0, 1.0, 0.0) + b"\x03ecg\x00", fb.DescriptionError, "sample_rate_hz"),
        (b"\x01\x03abc\x01" + struct.pack("<BBBddd", 0, 1, 0, 10.0, 1.0, 0.0) + b"\x03ecg\x00", fb.DescriptionError, "channels"),
        (b"\x01\x03abc\x00", fb.DescriptionError, "1..16 streams"),
        (b"\x01\x02\xff\xfe\x00", fb.DescriptionError, "UTF-8"),
        (b"\x01\x03abc\x01" + struct.pack("<BBBddd", 0, 1, 1, 10.0, 1.0, 0.0) + b"\x03ecg\x00\x00", fb.DescriptionError, "trailing"),
    ],
)
def test_description_content_errors(body, error, words):
    with pytest.raises(error, match=words):
        fb.decode_description(_with_crc(body))


def test_control_commands_layout():
    assert gatt.encode_control(gatt.ControlOpcode.START) == b"\x01\xff"
    assert gatt.encode_control(gatt.ControlOpcode.STOP, 4) == b"\x02\x04"
    assert gatt.encode_control(3, 1, sample_rate_hz=130.0, samples_per_packet=18) == b"\x03\x01" + struct.pack("<f", 130.0) + b"\x12"
    assert gatt.encode_control(3, 1) == b"\x03\x01\x00\x00\x00\x00\x00"
    assert gatt.decode_control(b"\x01\x02") == gatt.ControlCommand(gatt.ControlOpcode.START, 2)
    assert gatt.decode_control(bytearray(b"\x03\x00" + struct.pack("<f", 64.0) + b"\x00")) == gatt.ControlCommand(
        gatt.ControlOpcode.CONFIGURE, 0, 64.0, None
    )


@pytest.mark.parametrize(
    "data, att_error, words",
    [
        (b"", 0x0D, "empty"),
        (b"\x09\x00", 0x80, "0x09"),
        (b"\x01", 0x0D, "2 bytes"),
        (b"\x01\x00\x00", 0x0D, "2 bytes"),
        (b"\x03\x00\x00\x00", 0x0D, "7 bytes"),
        (b"\x03\x00" + struct.pack("<f", -5.0) + b"\x00", 0x82, "sample_rate_hz"),
        (b"\x03\x00" + struct.pack("<f", float("nan")) + b"\x00", 0x82, "sample_rate_hz"),
    ],
)
def test_control_errors_carry_the_att_error_code(data, att_error, words):
    with pytest.raises(fb.ControlError, match=words) as info:
        gatt.decode_control(data)
    assert info.value.att_error == att_error


def test_uuids_are_distinct_128_bit():
    import uuid

    uuids = {gatt.SERVICE_UUID, gatt.DATA_CHAR_UUID, gatt.CONTROL_CHAR_UUID, gatt.DESCRIPTION_CHAR_UUID}
    assert len(uuids) == 4
    assert all(str(uuid.UUID(u)) == u for u in uuids)
