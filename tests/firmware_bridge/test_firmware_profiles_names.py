"""The profile entry points resolve by the names issue 4 gives them, from the package itself."""

import biomoe_edge.firmware_bridge as firmware_bridge
from biomoe_edge.firmware_bridge import profiles


def test_profile_functions_resolve_through_the_package():
    assert callable(profiles.heart_rate.parse_measurement)
    assert callable(profiles.pulse_oximeter.parse_continuous)
    assert callable(profiles.pulse_oximeter.decode_sfloat)
    assert callable(profiles.polar_pmd.parse_data_frame)
    assert firmware_bridge.profiles is profiles
    # a value through the attribute path, from the SIG definition: flags 0x00 (uint8 bpm), 72 bpm
    assert firmware_bridge.profiles.heart_rate.parse_measurement(b"\x00\x48").bpm == 72
