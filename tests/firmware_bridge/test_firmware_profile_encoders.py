"""Each profile's encoder beside its decoder: the hand-written SIG and Polar vectors of test_firmware_profiles.py
come out of the encoders byte for byte, and anything encoded decodes back to what was encoded (property tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biomoe_edge.firmware_bridge.profiles import heart_rate, polar_pmd, pulse_oximeter

# -- Heart Rate Measurement ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hex_value, bpm, contact, energy, rr",
    [  # the decoder's vectors that a conforming encoder writes (reserved bits and u16-for-small-values aside)
        ("0048", 72, None, None, ()),
        ("014801", 328, None, None, ()),
        ("0640", 64, True, None, ()),
        ("0440", 64, False, None, ()),
        ("164b00041002", 75, True, None, (1.0, 528 / 1024)),
        ("1900012c010004", 256, None, 300, (1.0,)),
    ],
)
def test_heart_rate_encoder_writes_the_sig_vectors(hex_value, bpm, contact, energy, rr):
    measurement = heart_rate.HeartRateMeasurement(bpm, contact, energy, rr)
    assert heart_rate.encode_measurement(measurement) == bytes.fromhex(hex_value)
    assert bytes(measurement) == bytes.fromhex(hex_value)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFF), st.sampled_from([None, True, False]), st.none() | st.integers(0, 0xFFFF),
       st.lists(st.integers(0, 0xFFFF), max_size=8))
def test_heart_rate_round_trip(bpm, contact, energy, rr_units):
    measurement = heart_rate.HeartRateMeasurement(bpm, contact, energy, tuple(u / 1024 for u in rr_units))
    assert heart_rate.parse_measurement(heart_rate.encode_measurement(measurement)) == measurement


def test_heart_rate_encoder_refuses_values_that_do_not_fit():
    with pytest.raises(ValueError, match="u16"):
        heart_rate.encode_measurement(heart_rate.HeartRateMeasurement(70000, None, None, ()))
    with pytest.raises(ValueError, match="RR"):
        heart_rate.encode_measurement(heart_rate.HeartRateMeasurement(70, None, None, (64.0,)))


# -- PLX Continuous Measurement and SFLOAT ---------------------------------------------------------------------------


def test_sfloat_encoding_round_trips_through_the_ieee_11073_decoder():
    for value in (97.3, 100.0, 0.0, -12.5, 204.5, -204.5):
        assert pulse_oximeter.decode_sfloat(pulse_oximeter.encode_sfloat(value)) == pytest.approx(value, abs=1e-9)
    assert pulse_oximeter.encode_sfloat(97.3) == 0xF3CD  # exponent -1 (0xF), mantissa 973 (0x3CD)
    with pytest.raises(ValueError):
        pulse_oximeter.encode_sfloat(204.7)  # mantissa 2047 is the NaN code


def test_sfloat_special_values_and_other_exponents():
    assert pulse_oximeter.encode_sfloat(math.nan) == 0x07FF
    assert pulse_oximeter.encode_sfloat(math.inf) == 0x07FE and pulse_oximeter.encode_sfloat(-math.inf) == 0x0802
    assert pulse_oximeter.encode_sfloat(72, exponent=0) == 0x0048  # the 72 of the decoder's table
    assert pulse_oximeter.encode_sfloat(1200, exponent=2) == 0x200C  # 12 x 10^2


@settings(max_examples=300, deadline=None)
@given(st.integers(-2045, 2045), st.integers(-8, 7))
def test_sfloat_round_trip(mantissa, exponent):
    raw = ((exponent & 0xF) << 12) | (mantissa & 0x0FFF)
    value = pulse_oximeter.decode_sfloat(raw)
    assert pulse_oximeter.decode_sfloat(pulse_oximeter.encode_sfloat(value, exponent=exponent)) == value


def test_plx_encoder_writes_the_hand_worked_vector():
    # flags 0x1F: every field; 98.6 %, 72 bpm, fast 97.0/71.0, slow 99.0/73.0, status 0x0020, sensor 0x000100, PAI 2.5
    measurement = pulse_oximeter.PlxContinuousMeasurement(98.6, 72.0, 97.0, 71.0, 99.0, 73.0, 0x0020, 0x000100, 2.5)
    expected = bytes.fromhex("1f" "daf3" "d0f2" "caf3" "c6f2" "def3" "daf2" "2000" "000100" "19f0")
    assert pulse_oximeter.encode_continuous(measurement) == expected == bytes(measurement)


one_decimal = st.integers(-2045, 2045).map(lambda m: m / 10)


@settings(max_examples=300, deadline=None)
@given(one_decimal, one_decimal, st.none() | st.tuples(one_decimal, one_decimal),
       st.none() | st.tuples(one_decimal, one_decimal), st.none() | st.integers(0, 0xFFFF),
       st.none() | st.integers(0, 0xFFFFFF), st.none() | one_decimal)
def test_plx_round_trip(spo2, pulse, fast, slow, status, sensor_status, pai):
    fast, slow = fast or (None, None), slow or (None, None)
    measurement = pulse_oximeter.PlxContinuousMeasurement(spo2, pulse, *fast, *slow, status, sensor_status, pai)
    assert pulse_oximeter.parse_continuous(pulse_oximeter.encode_continuous(measurement)) == measurement


# -- Polar PMD -------------------------------------------------------------------------------------------------------


def test_pmd_frame_encoder_writes_polars_vectors():
    # EcgDataTest "process raw ecg data type 0": 02 80 FF -> -32766, 02 80 00 -> 32770
    frame = polar_pmd.encode_data_frame(polar_pmd.MeasurementType.ECG, 2_000_000_000, np.array([[-32766], [32770]]))
    assert frame == bytes.fromhex("00" "0094357700000000" "00" "0280ff028000")
    # PpgDataTest "test raw PPG frame type 0": two samples of PPG0, PPG1, PPG2, ambient
    ppg = np.array([[197121, 394500, 8388607, 0], [-1, -1052913, -8388608, -1052913]])
    assert polar_pmd.encode_data_frame(1, 2_000_000_000, ppg) == bytes.fromhex(
        "01" "0094357700000000" "00" "010203040506ffff7f000000" "ffffff0fefef0000800fefef")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([(0, 1), (1, 4), (2, 3)]), st.integers(0, 2**64 - 1), st.integers(1, 40), st.data())
def test_pmd_frame_round_trip(layout, timestamp_ns, n, data):
    measurement_type, channels = layout
    values = data.draw(st.lists(st.integers(-(1 << 23), (1 << 23) - 1), min_size=n * channels, max_size=n * channels))
    raw = np.array(values, dtype=np.int64).reshape(n, channels)
    # ACC raw frame type 0 is 8-bit in Polar's table: encode it at the resolution that layout reads
    resolution = 8 if measurement_type == 2 else 24
    if resolution == 8:
        raw = np.clip(raw, -128, 127)
    frame = polar_pmd.parse_data_frame(polar_pmd.encode_data_frame(measurement_type, timestamp_ns, raw, resolution=resolution))
    assert (frame.measurement_type, frame.timestamp_ns, frame.frame_type, frame.compressed) == (measurement_type, timestamp_ns, 0, False)
    np.testing.assert_array_equal(frame.raw, raw)


def test_pmd_frame_encoder_refuses_samples_that_do_not_fit():
    with pytest.raises(ValueError, match="do not fit"):
        polar_pmd.encode_data_frame(0, 0, np.array([[1 << 23]]))
    with pytest.raises(ValueError, match="integers"):
        polar_pmd.encode_data_frame(0, 0, np.array([[0.5]]))


def test_pmd_control_response_encoder_writes_polars_vectors():
    # BlePmdClientControlPointResponseTest: F0 01 02 00 00 FF FF FF and F0 01 06 07 00
    assert polar_pmd.encode_control_response(1, 2, 0, parameters=b"\xff\xff\xff") == bytes.fromhex("f001020000ffffff")
    assert polar_pmd.encode_control_response(1, 6, polar_pmd.ResponseStatus.ERROR_INVALID_RESOLUTION) == bytes.fromhex("f001060700")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.booleans(), st.binary(max_size=12))
def test_pmd_control_response_round_trip(op, measurement_type, status, more, parameters):
    answer = polar_pmd.parse_control_response(
        polar_pmd.encode_control_response(op, measurement_type, status, more=more, parameters=parameters))
    assert (answer.op_code, answer.measurement_type, answer.status) == (op, measurement_type, status)
    # an error answer carries no parameters, and "more" only when successful
    assert (answer.more, answer.parameters) == ((more, parameters) if status == 0 else (False, b""))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 63), st.integers(0, 0x7FFF), st.integers(0, 0x7FFF), st.integers(1, 127))
def test_pmd_start_command_round_trip(measurement_type, rate, resolution, channels):
    S = polar_pmd.SettingType
    command = polar_pmd.start_measurement_command(measurement_type, {S.SAMPLE_RATE: rate, S.RESOLUTION: resolution,
                                                                    S.CHANNELS: channels})
    parsed = polar_pmd.parse_control_command(command)
    assert (parsed.op_code, parsed.measurement_type) == (polar_pmd.ControlOp.REQUEST_MEASUREMENT_START, measurement_type)
    assert parsed.settings == {S.SAMPLE_RATE: (rate,), S.RESOLUTION: (resolution,), S.CHANNELS: (channels,)}
    stop = polar_pmd.parse_control_command(polar_pmd.stop_command_for(command))
    assert (stop.op_code, stop.measurement_type, stop.settings) == (polar_pmd.ControlOp.STOP_MEASUREMENT, measurement_type, {})


def test_pmd_start_refusal_reads_the_status_and_lets_already_running_pass():
    assert polar_pmd.start_refusal(bytes.fromhex("f002000000")) is None
    assert polar_pmd.start_refusal(bytes.fromhex("f002000600")) is None  # ERROR_ALREADY_IN_STATE
    assert polar_pmd.start_refusal(bytes.fromhex("f002010300")) == "ERROR_NOT_SUPPORTED"
    assert polar_pmd.features_value([polar_pmd.MeasurementType.ECG, polar_pmd.MeasurementType.PPG]) == b"\x0f\x03\x00"
