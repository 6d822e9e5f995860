"""Market BLE profiles decoded into the same stream abstraction: Heart Rate, Pulse Oximeter (PLX), Polar PMD.

``profiles.heart_rate.parse_measurement``, ``profiles.pulse_oximeter.parse_continuous`` /
``decode_sfloat`` and ``profiles.polar_pmd.parse_data_frame``; ``profiles.streams`` turns them into
``SampleBlock`` streams with the reassembler's counters.
"""

from . import heart_rate, polar_pmd, pulse_oximeter, streams

__all__ = ["heart_rate", "polar_pmd", "pulse_oximeter", "streams"]
