"""Ingest behind the real firmware_bridge: packets encoded, lost, reordered, decoded, reassembled, windowed.

Each sample's value is its own index on the device (float32 is exact up to 2**24). BVP arrives at its
model rate (64 Hz), so windows hold the slot values themselves: a window must read exactly
i0, i0 + 1, ..., i0 + 639, the lost samples being filled by linear interpolation between their neighbours,
and its gap fraction must be the share of lost indices in that range.
"""

from __future__ import annotations

import numpy as np
import pytest

from biomoe_edge.firmware_bridge.description import StreamDescription
from biomoe_edge.firmware_bridge.packet import SampleFormat, decode_packet, encode_packet
from biomoe_edge.firmware_bridge.reassembly import StreamReassembler
from biomoe_edge.runtime.ingest import Ingest, IngestConfig, QualityConfig, StreamKey

FS = 64.0
PER_PACKET = 16


def _run(seconds: float, loss: float, seed: int, drift_ppm: float = 40.0):
    rng = np.random.default_rng(seed)
    stream = StreamDescription(stream_id=3, modality="bvp", sample_rate_hz=FS, sample_format=SampleFormat.FLOAT32)
    reassembler = StreamReassembler(stream)
    ingest = Ingest()
    key = ingest.add_stream(
        StreamKey("band-7", "bvp"), FS, config=IngestConfig(10.0, 1.0, quality=QualityConfig(action="flag"))
    )
    assert ingest.model_rate_hz(key) == FS
    n_packets = int(seconds * FS / PER_PACKET)
    lost_indices = set()
    arrivals = []
    for sequence in range(n_packets):
        first = sequence * PER_PACKET
        indices = np.arange(first, first + PER_PACKET)
        if sequence > 0 and rng.random() < loss:  # the link dropped this notification
            lost_indices.update(indices.tolist())
            continue
        device_s = first / FS
        data = encode_packet(
            stream_id=3,
            sequence=sequence % 65536,
            timestamp_us=round(device_s * 1e6) % 2**32,
            samples=indices.astype(np.float32)[:, None],
            sample_format=SampleFormat.FLOAT32,
        )
        arrival = 500.0 + device_s * (1 + drift_ppm * 1e-6) + PER_PACKET / FS + rng.exponential(0.02)
        arrivals.append((arrival, data))
    arrivals.sort(key=lambda item: item[0])  # BLE latency jitter reorders some notifications
    for arrival, data in arrivals:
        for block in reassembler.push(decode_packet(data), arrival):
            ingest.push_block(key, block, arrival_time_s=arrival)
    for block in reassembler.flush():
        ingest.push_block(key, block)
    return ingest, key, reassembler, lost_indices


@pytest.mark.parametrize("loss, seed", [(0.0, 1), (0.03, 2), (0.1, 3)])
def test_windows_hold_exact_sample_runs_and_count_what_the_link_lost(loss, seed):
    ingest, key, reassembler, lost = _run(90.0, loss, seed)
    windows = ingest.pop_windows()
    assert [w.index for w in windows] == list(range(len(windows))) and len(windows) >= 78
    for w in windows:
        first = w.samples[0, 0]
        np.testing.assert_array_equal(w.samples[0], first + np.arange(640))
        lost_here = sum(1 for i in range(int(first), int(first) + 640) if i in lost)
        assert w.gap_fraction == pytest.approx(lost_here / 640)
        assert ("gaps" in w.quality) == (lost_here / 640 > 0.2)
        # the clock fit maps a packet's last sample to its earliest arrivals: device time + 500 s + 1 / FS
        assert abs((first / FS + 500.0 + 1 / FS) - w.start_s) < 0.05
    account = ingest.account(key)
    stats = reassembler.stats
    assert account.samples_received == stats.samples_delivered
    assert account.samples_lost.get("packet_loss", 0) == stats.samples_lost - stats.samples_late
    assert account.samples_dropped == {} and account.samples_pending < 64
    assert account.samples_received == account.samples_windowed + account.samples_pending
    assert account.events.get("gap_filled", 0) == stats.gaps
