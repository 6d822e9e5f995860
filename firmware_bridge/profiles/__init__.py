"""Market BLE profiles decoded into the same stream abstraction: Heart Rate, Pulse Oximeter (PLX), Polar PMD.

Each profile module holds its wire format both ways (``parse_*`` and ``encode_*``): ``heart_rate``,
``pulse_oximeter``, ``polar_pmd``. ``streams`` turns notifications into ``SampleBlock`` streams with the
reassembler's counters. ``registry`` is the one record per profile (``Profile``, ``PROFILES``, ``profile_spec``)
that configuration, transport, gateway, emulator and command line read.
"""

from . import heart_rate, polar_pmd, pulse_oximeter, registry, streams
from .registry import PROFILES, Profile, ProfileSpec, profile_spec

__all__ = ["heart_rate", "polar_pmd", "pulse_oximeter", "registry", "streams", "Profile", "ProfileSpec", "PROFILES",
           "profile_spec"]
