"""Market profiles as streams: SampleBlocks and exact counters, like the native reassembler."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from biomoe_edge.firmware_bridge.profiles.streams import HeartRateStream, PlxStream, PmdStream

FS = 130.0
PERIOD_NS = 1e9 / FS


def ecg_frame(last_ns: int, values) -> bytes:
    """PMD ECG raw type-0 frame built with struct (type, u64 ns, frame type, 3-byte signed LE samples)."""
    return struct.pack("<BQB", 0, last_ns, 0) + b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)


def frames(count, per_frame=73, start_ns=700_000_000_000_000_000):
    out, k = [], 0
    for _ in range(count):
        values = np.arange(k, k + per_frame) * 10 - 5000
        last_ns = start_ns + round((k + per_frame - 1) * PERIOD_NS)
        out.append((ecg_frame(last_ns, values), values, (k + per_frame - 1) / FS))
        k += per_frame
    return out


def test_pmd_stream_delivers_counts_gaps_and_maps_time():
    stream = PmdStream(0, FS, stream_id=4, factor=0.5)
    assert (stream.description.modality, stream.description.units, stream.description.scale) == ("ecg", "uV", 0.5)
    data = frames(8)
    blocks = []
    order = [0, 1, 2, 4, 4, 5, 3, 6, 7]  # frame 3 never arrives in time (it comes late), 4 twice
    for i in order:
        payload, _, last_s = data[i]
        blocks += stream.push(bytearray(payload), 50.0 + last_s + 0.012)
    s = stream.stats
    assert (s.packets_delivered, s.packets_duplicated, s.packets_late) == (7, 1, 1)
    assert (s.gaps, s.samples_lost) == (1, 73)
    assert s.packets_received == s.packets_delivered + s.packets_duplicated + s.packets_late + s.packets_rejected
    assert [b.samples_lost_before for b in blocks] == [0, 0, 0, 73, 0, 0, 0]
    np.testing.assert_array_equal(blocks[3].samples[:, 0], data[4][1] * 0.5)
    times = np.concatenate([b.gateway_times_s for b in blocks[:3]])
    np.testing.assert_allclose(np.diff(times), 1 / FS, rtol=1e-6)
    # Arrival 12 ms after the last sample on every frame: the mapping recovers the sampling times + 12 ms.
    assert blocks[-1].gateway_times_s[-1] == pytest.approx(50.0 + data[7][2] + 0.012, abs=1e-4)


def test_pmd_stream_rejects_without_raising():
    stream = PmdStream(0, FS)
    assert stream.push(b"\x00\x01", 1.0) == []
    assert stream.push(struct.pack("<BQB", 2, 5, 1) + bytes(6), 1.0) == []  # an ACC frame on the ECG stream
    assert stream.stats.packets_rejected == 2
    assert sorted(stream.stats.rejected_reasons) == ["TruncatedPacketError", "measurement type 2 (expected 0)"]


def test_heart_rate_stream():
    stream = HeartRateStream(stream_id=1)
    blocks = stream.push(bytes.fromhex("164b00041002"), 10.0) + stream.push(bytes.fromhex("0640"), 11.0)
    assert [b.samples[0, 0] for b in blocks] == [75.0, 64.0]
    assert [b.gateway_times_s[0] for b in blocks] == [10.0, 11.0]
    assert list(stream.rr_intervals_s) == [1.0, 528 / 1024] and stream.contact is True
    assert stream.push(b"\x01", 12.0) == [] and stream.stats.packets_rejected == 1


def test_plx_stream():
    stream = PlxStream()
    (block,) = stream.push(bytes.fromhex("0062004800"), 3.0)
    np.testing.assert_array_equal(block.samples, [[98.0, 72.0]])
    assert stream.description.channels == 2 and stream.stats.samples_delivered == 1


def test_pmd_stream_restarts_when_the_sensor_clock_steps_back_or_leaps():
    stream = PmdStream(0, FS)
    before = frames(4)  # device time around 7e17 ns
    after_reboot = frames(4, start_ns=1_000_000_000)  # the strap rebooted: its clock starts again near 1 s
    blocks = []
    for i, (payload, _, last_s) in enumerate(before + after_reboot):
        blocks += stream.push(payload, 10.0 + i * 73 / FS)
    s = stream.stats
    assert s.restarts == 1 and s.packets_late == 0 and s.samples_lost == 0
    assert len(blocks) == 8  # every frame delivered
    # a leap of years is a clock re-sync, not billions of lost samples
    leap = ecg_frame(2**63 - 1, np.arange(73))
    blocks += stream.push(leap, 20.0)
    assert stream.stats.restarts == 2 and stream.stats.samples_lost == 0 and len(blocks) == 9
    # a non-finite arrival time is rejected and counted, never raised
    assert stream.push(before[0][0], float("nan")) == []
    assert stream.stats.rejected_reasons.get("non-finite arrival time") == 1
    assert stream.stats.packets_received == 10
