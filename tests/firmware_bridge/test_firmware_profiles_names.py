"""The profile entry points resolve by their documented names, from the package itself, and decode values."""

import math

import numpy as np

import biomoe_edge.firmware_bridge as firmware_bridge


def test_profile_functions_resolve_through_the_package_and_decode():
    profiles = firmware_bridge.profiles
    # flags 0x00 (uint8 bpm), 72 bpm: the SIG definition
    assert profiles.heart_rate.parse_measurement(b"\x00\x48").bpm == 72
    # flags 0, SpO2 0xF3CD (973 x 10^-1) and pulse rate 0x0048 (72 x 10^0)
    reading = profiles.pulse_oximeter.parse_continuous(bytes.fromhex("00cdf34800"))
    assert (reading.spo2, reading.pulse_rate) == (97.3, 72.0)
    assert math.isnan(profiles.pulse_oximeter.decode_sfloat(0x07FF))
    # Polar's EcgDataTest frame: 02 80 FF -> -32766
    frame = profiles.polar_pmd.parse_data_frame(bytes.fromhex("00" + "00" * 8 + "00" + "0280ff"))
    np.testing.assert_array_equal(frame.raw, [[-32766]])
