"""Market profiles: Heart Rate (0x2A37), PLX Continuous (0x2A5F), Polar PMD.

HRS/PLX vectors are written by hand from the Bluetooth SIG field definitions (flags bit by bit, SFLOAT
nibbles worked out on paper). Polar vectors are the byte sequences of polarofficial/polar-ble-sdk's own unit
tests (Android library, src/test/.../pmd/model/EcgDataTest.kt, PpgDataTest.kt, AccDataTest.kt,
pmd/PmdSettingTest.kt, pmd/BlePmdClientControlPointResponseTest.kt), with the values those tests assert.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biomoe_edge import firmware_bridge as fb
from biomoe_edge.firmware_bridge.profiles import heart_rate, polar_pmd, pulse_oximeter

# -- Heart Rate Measurement ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hex_value, bpm, contact, energy, rr",
    [
        ("0048", 72, None, None, ()),  # flags 0: u8 HR, no contact feature
        ("014801", 328, None, None, ()),  # flags bit 0: u16 HR 0x0148
        ("0640", 64, True, None, ()),  # bits 2+1: contact supported and detected
        ("0440", 64, False, None, ()),  # bit 2 only: supported, not detected
        ("0240", 64, None, None, ()),  # bit 1 without bit 2: not supported -> None
        ("164b00041002", 75, True, None, (1.0, 528 / 1024)),  # RR 0x0400 = 1 s, 0x0210 = 528/1024 s
        ("1900012c010004", 256, None, 300, (1.0,)),  # u16 HR, energy 0x012C kJ, one RR
        ("e05a", 90, None, None, ()),  # reserved bits 5-7 set: ignored
    ],
)
def test_heart_rate_measurement(hex_value, bpm, contact, energy, rr):
    m = heart_rate.parse_measurement(bytearray.fromhex(hex_value))
    assert (m.bpm, m.contact, m.energy_kj, m.rr_intervals_s) == (bpm, contact, energy, rr)


@pytest.mark.parametrize(
    "hex_value, error",
    [
        ("", fb.TruncatedPacketError),
        ("00", fb.TruncatedPacketError),
        ("0148", fb.TruncatedPacketError),  # u16 flagged, one byte
        ("084801", fb.TruncatedPacketError),  # energy flagged, one byte
        ("104800", fb.LengthMismatchError),  # RR field of 1 byte
        ("004800", fb.LengthMismatchError),  # trailing byte, nothing flagged
    ],
)
def test_heart_rate_malformed(hex_value, error):
    with pytest.raises(error):
        heart_rate.parse_measurement(bytes.fromhex(hex_value))


# -- PLX ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        (0x0062, 98.0),  # exponent 0, mantissa 98
        (0xF3CF, 97.5),  # exponent -1, mantissa 0x3CF = 975
        (0x1001, 10.0),  # exponent 1, mantissa 1
        (0x0FFF, -1.0),  # mantissa 0xFFF = -1
        (0x8001, 1e-8),  # exponent -8
        (0xE001, 0.01),  # exponent -2 (0xE), mantissa 1
        (0x07FE, math.inf),
        (0x0802, -math.inf),
    ],
)
def test_sfloat_values(raw, expected):
    assert pulse_oximeter.decode_sfloat(raw) == expected


@pytest.mark.parametrize("raw", [0x07FF, 0x0800, 0x0801])  # NaN, NRes, reserved
def test_sfloat_not_a_number(raw):
    assert math.isnan(pulse_oximeter.decode_sfloat(raw))


def test_sfloat_out_of_range():
    with pytest.raises(fb.PacketError):
        pulse_oximeter.decode_sfloat(0x10000)


def test_plx_minimal():
    # flags 0: SpO2 98 (62 00), PR 72 (48 00)
    m = pulse_oximeter.parse_continuous(bytes.fromhex("0062004800"))
    assert (m.spo2, m.pulse_rate) == (98.0, 72.0)
    assert m.spo2_fast is m.pulse_rate_fast is m.spo2_slow is m.pulse_rate_slow is None
    assert m.status is m.sensor_status is m.pulse_amplitude_index is None


def test_plx_every_field():
    value = bytes.fromhex(
        "1f"  # all five optional parts
        "6200" "4800"  # normal: 98 %, 72 bpm
        "cff3" "4700"  # fast: 97.5 % (0xF3CF), 71 bpm
        "ff07" "0008"  # slow: NaN, NRes
        "2001"  # measurement status 0x0120
        "030201"  # device and sensor status 0x010203
        "19f0"  # pulse amplitude index 2.5 % (0xF019: exponent -1, mantissa 25)
    )
    m = pulse_oximeter.parse_continuous(memoryview(value))
    assert (m.spo2, m.pulse_rate, m.spo2_fast, m.pulse_rate_fast) == (98.0, 72.0, 97.5, 71.0)
    assert math.isnan(m.spo2_slow) and math.isnan(m.pulse_rate_slow)
    assert (m.status, m.sensor_status, m.pulse_amplitude_index) == (0x0120, 0x010203, 2.5)


def test_plx_only_sensor_status_and_pai():
    m = pulse_oximeter.parse_continuous(bytes.fromhex("18" "6100" "3c00" "000080" "fe07"))
    assert (m.spo2, m.pulse_rate, m.sensor_status, m.pulse_amplitude_index) == (97.0, 60.0, 0x800000, math.inf)
    assert m.status is None and m.spo2_fast is None


@pytest.mark.parametrize(
    "hex_value, error",
    [("", fb.TruncatedPacketError), ("00620048", fb.TruncatedPacketError), ("1f6200480000", fb.TruncatedPacketError),
     ("006200480000", fb.LengthMismatchError)],
)
def test_plx_malformed(hex_value, error):
    with pytest.raises(error):
        pulse_oximeter.parse_continuous(bytes.fromhex(hex_value))


# -- Polar PMD ------------------------------------------------------------------------------------------------

HEADER_TS_2E9 = "0094357700000000"  # 2 000 000 000 ns, little-endian u64


def test_pmd_ecg_raw_type0():
    # EcgDataTest "process raw ecg data type 0": 02 80 FF -> -32766, 02 80 00 -> 32770
    frame = polar_pmd.parse_data_frame(bytes.fromhex("00" + HEADER_TS_2E9 + "00" + "0280ff028000"))
    assert (frame.measurement_type, frame.timestamp_ns, frame.frame_type, frame.compressed) == (0, 2_000_000_000, 0, False)
    assert frame.samples.shape == (2, 1)
    np.testing.assert_array_equal(frame.raw[:, 0], [-32766, 32770])


def test_pmd_ppg_raw_type0():
    # PpgDataTest "test raw PPG frame type 0": two samples of PPG0, PPG1, PPG2, ambient
    content = "010203040506ffff7f000000" "ffffff0fefef0000800fefef"
    frame = polar_pmd.parse_data_frame(bytes.fromhex("01" + HEADER_TS_2E9 + "00" + content))
    np.testing.assert_array_equal(frame.raw, [[197121, 394500, 8388607, 0], [-1, -1052913, -8388608, -1052913]])


PPG_COMPRESSED_TYPE0 = (
    "2C2D00C27700D3D2FF3D88FF0A29B2F0EE3411B2ECEE7411B1E8FEB411B1E8FEB411B1E0FE3412B0DC0E7512B0D80EB512AFD41EF512"
    "AFD01E3513AECC2E7513AEC82EB513ADC43EF513ADBC3E7514ADBC3E7514ACB84EB514ACB44EF514ABB05E3515AAAC6E7515AAA86EB5"
    "15AAA46EF515A9A07E3516A99C7E7516A8988EB516A7949EF516A7909E3517A78C9E7517A688AEB517A588BEB517A580BE3518A47CCE"
    "7518A478CEB518A378DEB518A270EE3519A26CEE7519A26CEE7519A168FEB519A0600E361A9F601E361A9F5C1E761A9F581EB61A9D54"
    "3EF61A"
)


def test_pmd_ppg_compressed_type0_with_factor():
    # PpgDataTest "test compressed PPG frame type 0": reference (11564, 30658, -11565, -30659), 41 deltas of
    # 10 bits, the first (178, -68, -178, 68).
    frame = polar_pmd.parse_data_frame(bytes.fromhex("01" + HEADER_TS_2E9 + "80" + PPG_COMPRESSED_TYPE0), factor=0.5)
    assert frame.compressed and frame.frame_type == 0
    assert frame.raw.shape == (42, 4)
    np.testing.assert_array_equal(frame.raw[0], [11564, 30658, -11565, -30659])
    np.testing.assert_array_equal(frame.raw[1], [11564 + 178, 30658 - 68, -11565 - 178, -30659 + 68])
    np.testing.assert_array_equal(frame.samples, frame.raw * 0.5)


def test_pmd_acc_raw_type1():
    # AccDataTest "process acc raw data frame type 1": F7 FF FF FF E7 03 | F8 FF FE FF E5 03
    frame = polar_pmd.parse_data_frame(bytes.fromhex("02" + HEADER_TS_2E9 + "01" + "f7ffffffe703f8fffeffe503"))
    np.testing.assert_array_equal(frame.raw, [[-9, -1, 999], [-8, -2, 997]])


ACC_COMPRESSED_TYPE0 = (
    "7107F06A9E8D0A38BE5CBEBA2F96B3EE4BE5ADFB42B9EBBE4CFEBA2F92BFEE4BE4B1FB12B9ECBD3C3EBB2F8FD3DE4BE3B5F7D2B8ED"
    "BD307E7B2F8BE3CE8BE2BAF7A2B8EEBC20BE7B2F88F3CECBE1BDEF52F8EFBC18FE3B2F8403BFCBE0C2EF32B8F0BB044EBC2E8113AF"
    "0BE0C6EFF2F7F1B9FC7DBC2E7D279F4BDFCAEBC2F7F2B8ECCD7C2E7B378F4BDECEE392F7F3B8E00DFD2D774B7FCBDDD2DF6237F5B7"
    "D44DBD2D745B6FCBDCD7D73237F6B5C88D7D2D716B4F4BDCDCD3F236F7B4BCDDFD2C6F7B3F4BDBE0CFD236F8B2B02DBE2C6C8F1FCB"
    "DAE3C7A276F9"
)


def test_pmd_acc_compressed_type0():
    # AccDataTest "process acc compressed data type 0": 56 deltas of 10 bits after the reference sample,
    # the SDK scales by factor*1000 (G -> mG) and truncates; the test asserts those truncated values.
    frame = polar_pmd.parse_data_frame(bytes.fromhex("02" + HEADER_TS_2E9 + "80" + ACC_COMPRESSED_TYPE0), factor=2.44e-4 * 1000)
    assert frame.raw.shape == (57, 3)
    np.testing.assert_array_equal(frame.raw[0], [1905, 27376, -29282])
    np.testing.assert_array_equal(frame.raw[1], [1905 + 190, 27376 - 105, -29282 - 85])
    assert np.all(np.abs(frame.samples) <= 8 * 1000)  # within the 8 G range, in mG


def test_pmd_acc_compressed_type1():
    # AccDataTest "process acc compressed data type 1": reference (-15, 20, 1008), one 6-bit delta (-5, -3, 0)
    frame = polar_pmd.parse_data_frame(bytes.fromhex("02" + "6500000000000000" + "81" + "f1ff1400f003" "0601" "7b0f08"))
    assert frame.timestamp_ns == 0x65 and frame.frame_type == 1 and frame.compressed
    np.testing.assert_array_equal(frame.raw, [[-15, 20, 1008], [-20, 17, 1008]])


def test_pmd_explicit_layout_for_other_types():
    # A compressed gyro-like frame (type 5) read with an explicit layout: 3 x 16-bit, 2-bit deltas of +1, -1, 0.
    # bits LSB-first: +1 = 01, -1 = 11, 0 = 00 -> 0b00_11_01 = 0x0D
    frame = polar_pmd.parse_data_frame(
        bytes.fromhex("05" + "0000000000000000" + "80" + "0a00" "f6ff" "0000" "0201" "0d"), channels=3, resolution=16
    )
    np.testing.assert_array_equal(frame.raw, [[10, -10, 0], [11, -11, 0]])
    with pytest.raises(fb.ProfileError, match="no known layout"):
        polar_pmd.parse_data_frame(bytes.fromhex("05" + "0000000000000000" + "80" + "0a00f6ff0000"))


@pytest.mark.parametrize(
    "hex_value, error, words",
    [
        ("00" + HEADER_TS_2E9, fb.TruncatedPacketError, "header"),
        ("00" + HEADER_TS_2E9 + "00", fb.TruncatedPacketError, "no samples"),
        ("00" + HEADER_TS_2E9 + "00" + "0280ff02", fb.LengthMismatchError, "whole number"),
        ("02" + HEADER_TS_2E9 + "81" + "f1ff1400", fb.TruncatedPacketError, "reference"),
        ("02" + HEADER_TS_2E9 + "81" + "f1ff1400f00306", fb.TruncatedPacketError, "block header"),
        ("02" + HEADER_TS_2E9 + "81" + "f1ff1400f00306017b0f", fb.TruncatedPacketError, "needs 3"),
        ("02" + HEADER_TS_2E9 + "81" + "f1ff1400f00300017b", fb.ProfileError, "delta size 0"),
        ("02" + HEADER_TS_2E9 + "81" + "f1ff1400f003210100", fb.ProfileError, "delta size 33"),
        ("07" + HEADER_TS_2E9 + "00" + "00", fb.ProfileError, "no known layout"),
    ],
)
def test_pmd_malformed(hex_value, error, words):
    with pytest.raises(error, match=words):
        polar_pmd.parse_data_frame(bytes.fromhex(hex_value))


def test_pmd_sample_timestamps_end_at_the_frame_timestamp():
    frame = polar_pmd.parse_data_frame(bytes.fromhex("00" + HEADER_TS_2E9 + "00" + "0280ff028000"))
    np.testing.assert_allclose(polar_pmd.sample_timestamps_ns(frame, sample_rate_hz=130.0), [2e9 - 1e9 / 130, 2e9])
    np.testing.assert_allclose(polar_pmd.sample_timestamps_ns(frame, previous_timestamp_ns=1_000_000_000), [1.5e9, 2e9])
    assert polar_pmd.POLAR_EPOCH_UNIX_NS == 946684800 * 10**9  # date -d 2000-01-01Z +%s


def test_pmd_control_commands():
    # H10 ECG 130 Hz 14-bit: Polar's documented example 02 00 00 01 82 00 01 01 0E 00
    assert polar_pmd.start_h10_ecg_command() == bytes.fromhex("02000001820001010e00")
    # Verity Sense PPG 55 Hz, 22-bit, 4 channels: settings TLVs (type, count 1, value LE)
    assert polar_pmd.start_verity_ppg_command() == bytes.fromhex("0201" "00013700" "01011600" "040104")
    assert polar_pmd.request_settings_command(polar_pmd.MeasurementType.PPG) == b"\x01\x01"
    assert polar_pmd.stop_measurement_command(polar_pmd.MeasurementType.ECG) == b"\x03\x00"
    assert polar_pmd.start_measurement_command(2, {"sample_rate": 200, "resolution": 16, "range": 8}) == bytes.fromhex(
        "0202" "0001c800" "01011000" "02010800"
    )
    with pytest.raises(ValueError):
        polar_pmd.start_measurement_command(0, {"channels": 256})


def test_pmd_control_responses():
    # BlePmdClientControlPointResponseTest: F0 01 02 00 00 FF FF FF and F0 01 06 07 00
    ok = polar_pmd.parse_control_response(bytes.fromhex("f001020000ffffff"))
    assert (ok.op_code, ok.measurement_type, ok.ok, ok.more, ok.parameters) == (1, 2, True, False, b"\xff\xff\xff")
    bad = polar_pmd.parse_control_response(bytes.fromhex("f001060700"))
    assert (bad.ok, bad.status_name, bad.parameters) == (False, "ERROR_INVALID_RESOLUTION", b"")
    # PmdSettingTest.testPmdSettingsWithRange: 52 Hz, 16 bit, ranges 245/500/1000/2000, 3 channels
    offered = polar_pmd.parse_control_response(
        bytes.fromhex("f0010200" "00" "0001340001011000" "0204f500f401e803d007" "040103")
    ).settings
    S = polar_pmd.SettingType
    assert offered == {S.SAMPLE_RATE: (52,), S.RESOLUTION: (16,), S.RANGE: (245, 500, 1000, 2000), S.CHANNELS: (3,)}
    # Start response carrying the FACTOR (float32 1.0 = 00 00 80 3F)
    started = polar_pmd.parse_control_response(bytes.fromhex("f0020200" "00" "05010000803f"))
    assert started.settings == {S.FACTOR: (1.0,)}
    # PmdSettingTest.testPmdSettingWithRangeMilliUnit: FF FF FF FF reads as -1
    assert polar_pmd.parse_settings(bytes.fromhex("0302ffffffffff000000" "01010e00"))[S.RANGE_MILLIUNIT] == (-1, 255)
    with pytest.raises(fb.ProfileError, match="0xF0"):
        polar_pmd.parse_control_response(b"\x01\x02\x00\x00")
    with pytest.raises(fb.TruncatedPacketError):
        polar_pmd.parse_settings(bytes.fromhex("000234"))


# -- whatever the bytes: only PacketError -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(["hr", "plx", "pmd", "pmd_compressed", "cp", "settings"]))
def test_profiles_raise_only_packet_error(data, which):
    parse = {
        "hr": heart_rate.parse_measurement,
        "plx": pulse_oximeter.parse_continuous,
        "pmd": polar_pmd.parse_data_frame,
        "pmd_compressed": lambda d: polar_pmd.parse_data_frame(bytes([2]) + bytes(8) + bytes([0x81]) + d),
        "cp": polar_pmd.parse_control_response,
        "settings": polar_pmd.parse_settings,
    }[which]
    try:
        parse(data)
    except fb.PacketError:
        pass


def polar_delta_reference(content: bytes, channels: int, resolution: int) -> list[list[int]]:
    """BlePMDClient.parseDeltaFramesAll / parseDeltaFrame transcribed loop for loop (bit lists, LSB first).

    One deliberate difference: Polar sign-extends with ``Int.MAX_VALUE shl (bitWidth - 1)``, which for a 1-bit
    delta turns 1 into 2^31 - 1; here (and in polar_pmd) a 1-bit delta is two's complement, 1 -> -1. For 2..32
    bits the two agree."""
    width = (resolution + 7) // 8
    mask = -1 << (resolution - 1)  # parseDeltaFrameRefSamples: sample or mask when sample and mask != 0
    reference = [int.from_bytes(content[i * width : (i + 1) * width], "little", signed=True) for i in range(channels)]
    samples = [[value | mask if value & mask else value for value in reference]]
    offset = channels * width
    while offset < len(content):
        delta_size, count = content[offset], content[offset + 1]
        offset += 2
        bit_length = count * delta_size * channels
        block = content[offset : offset + (bit_length + 7) // 8]
        bits = [(byte >> i) & 1 for byte in block for i in range(8)]
        position = 0
        while position < bit_length:
            deltas = []
            for _ in range(channels):
                value = sum(bit << i for i, bit in enumerate(bits[position : position + delta_size]))
                if value & (1 << (delta_size - 1)):
                    value -= 1 << delta_size
                deltas.append(value)
                position += delta_size
            samples.append([a + b for a, b in zip(samples[-1], deltas)])
        offset += (bit_length + 7) // 8
    return samples


@st.composite
def compressed_frames(draw):
    channels = draw(st.integers(1, 4))
    resolution = draw(st.sampled_from([8, 16, 22, 24]))
    width = (resolution + 7) // 8
    content = b"".join(draw(st.integers(-(1 << (8 * width - 1)), (1 << (8 * width - 1)) - 1)).to_bytes(width, "little", signed=True)
                       for _ in range(channels))
    for _ in range(draw(st.integers(0, 3))):
        delta_size, count = draw(st.integers(1, 24)), draw(st.integers(1, 20))
        content += bytes([delta_size, count]) + draw(st.binary(min_size=(delta_size * count * channels + 7) // 8,
                                                               max_size=(delta_size * count * channels + 7) // 8))
    return content, channels, resolution


@settings(max_examples=100, deadline=None)
@given(compressed_frames())
def test_delta_decoding_matches_polar_loop(frame):
    content, channels, resolution = frame
    decoded = polar_pmd.parse_data_frame(bytes([7]) + bytes(8) + bytes([0x80]) + content, channels=channels,
                                         resolution=resolution)
    assert decoded.raw.tolist() == polar_delta_reference(content, channels, resolution)
