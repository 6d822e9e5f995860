"""Wearable wire formats: bytes from BLE notifications to samples, with loss accounting. Needs only NumPy.

Layers, each importing only the ones before it (PROTOCOL.md describes the native protocol):
``exc`` -> ``packet`` (data packet codec) -> ``description`` / ``gatt`` (characteristic values, UUIDs) ->
``clock`` / ``reassembly`` (sequence, loss, device-to-gateway time) -> ``profiles`` (Heart Rate, PLX, Polar PMD).
"""

from . import exc
from .clock import ClockMapper
from .description import DeviceDescription, StreamDescription, decode_description, encode_description
from .exc import *  # noqa: F403 - every error of the bridge, by the names exc.__all__ lists
from .packet import Packet, SampleFormat, decode_packet, encode_packet, max_samples_per_packet
from .reassembly import ReassemblyStats, SampleBlock, StreamReassembler

from . import profiles  # noqa: E402 - the top layer, after everything it builds on

__all__ = [
    "profiles",
    *exc.__all__,
    "SampleFormat",
    "Packet",
    "encode_packet",
    "decode_packet",
    "max_samples_per_packet",
    "StreamDescription",
    "DeviceDescription",
    "encode_description",
    "decode_description",
    "ClockMapper",
    "StreamReassembler",
    "SampleBlock",
    "ReassemblyStats",
]
