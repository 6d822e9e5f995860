"""Signal sources, quantisation and seeded faults of the emulated wearable (no Bluetooth involved)."""

from __future__ import annotations

import numpy as np
import pytest

from biomoe_edge.firmware_bridge.emulation.faults import FaultInjector, LinkFaults
from biomoe_edge.firmware_bridge.emulation.signals import SignalSource, quantise, recorded_signals
from biomoe_edge.firmware_bridge.packet import SampleFormat


def test_int16_quantisation_reconstructs_within_half_a_step_and_uses_the_range():
    t = np.linspace(0, 10, 5000)
    source = SignalSource("eda", 16.0, 3.0 + 2.0 * np.sin(t) + 0.1 * t, "uS")
    scale, offset = source.quantisation(SampleFormat.INT16)
    raw = quantise(source.values, scale, offset, SampleFormat.INT16)
    assert raw.min() >= -32768 and raw.max() <= 32767
    assert raw.max() - raw.min() >= 59000  # most of the int16 range is used: resolution is not wasted
    np.testing.assert_allclose(raw * scale + offset, source.values, atol=scale / 2 + 1e-12)
    # Values beyond the looped buffer's range clip instead of wrapping around.
    assert quantise(np.array([[1e9], [-1e9]]), scale, offset, SampleFormat.INT16).ravel().tolist() == [32767, -32768]


def test_float32_is_sent_as_is_and_constant_signals_get_a_usable_scale():
    source = SignalSource("spo2", 1.0, np.full(10, 97.0), "%")
    assert source.quantisation(SampleFormat.FLOAT32) == (1.0, 0.0)
    scale, offset = source.quantisation(SampleFormat.INT16)
    assert scale > 0 and quantise(source.values, scale, offset, SampleFormat.INT16).ravel().tolist() == [0] * 10


def test_window_loops_over_the_recording_and_resampling_keeps_duration():
    source = SignalSource("bvp", 4.0, np.arange(8.0))
    assert source.window(6, 5).ravel().tolist() == [6.0, 7.0, 0.0, 1.0, 2.0]
    slower = source.resampled(2.0)
    assert slower.sample_rate_hz == 2.0 and slower.values.ravel().tolist() == [0.0, 2.0, 4.0, 6.0]


def test_recorded_signals_from_csv_and_mapping(tmp_path):
    path = tmp_path / "rec.csv"
    path.write_text("BVP,eda\n1.5,0.25\n2.5,0.5\n3.5,0.75\n")
    sources = recorded_signals(path, sample_rate_hz=32.0, modalities=["eda", "bvp"])
    assert [(s.modality, s.sample_rate_hz, s.units) for s in sources] == [("eda", 32.0, "uS"), ("bvp", 32.0, "au")]
    assert sources[1].values.ravel().tolist() == [1.5, 2.5, 3.5]
    with pytest.raises(ValueError, match="sample_rate_hz"):
        recorded_signals(path)
    with pytest.raises(ValueError, match="no 'ecg' signal"):
        recorded_signals({"bvp": (np.zeros(4), 64.0)}, modalities=["ecg"])
    with pytest.raises(ValueError, match="NaN"):
        SignalSource("bvp", 64.0, np.array([0.0, np.nan]))


def test_fault_probabilities_are_checked():
    with pytest.raises(ValueError, match="loss"):
        LinkFaults(loss=1.5)
    with pytest.raises(ValueError, match="disconnect_every"):
        LinkFaults(disconnect_every=0)


def test_loss_draws_follow_the_probability_and_the_seed():
    injector = FaultInjector(LinkFaults(loss=0.1), seed=3)
    first = [injector.drop() for _ in range(20000)]
    again = FaultInjector(LinkFaults(loss=0.1), seed=3)
    assert [again.drop() for _ in range(20000)] == first
    # Binomial(20000, 0.1): sd 42; 6 sd either side.
    assert abs(sum(first) - 2000) < 6 * 42
    assert not any(FaultInjector(LinkFaults(loss=0.0), seed=3).drop() for _ in range(1000))


def test_garbage_is_never_a_valid_packet_header():
    injector = FaultInjector(LinkFaults(garbage=1.0), seed=0)
    blobs = [injector.garbage() for _ in range(200)]
    assert all(b is not None and 1 <= len(b) < 20 and b[0] != 1 for b in blobs)


def test_disconnect_schedule_explicit_and_periodic_with_jitter():
    injector = FaultInjector(LinkFaults(disconnect_at=(7.0, 2.0)), seed=0)
    assert injector.next_disconnect() == 2.0
    injector.disconnect_done(2.0)
    assert injector.next_disconnect() == 7.0
    injector.disconnect_done(7.5)
    assert injector.next_disconnect() is None

    periodic = FaultInjector(LinkFaults(disconnect_every=10.0, disconnect_jitter=0.2), seed=1)
    times = []
    for _ in range(50):
        times.append(periodic.next_disconnect())
        periodic.disconnect_done(times[-1])
    gaps = np.diff([0.0, *times])
    assert gaps.min() >= 8.0 and gaps.max() <= 12.0 and gaps.std() > 0.5

