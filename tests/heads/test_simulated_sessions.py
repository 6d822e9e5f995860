"""Simulated labelled sessions: the physiology differs by class the way the module says (measured here with
SciPy from the signals, not read back from the simulator's parameters), subjects are reproducible one by one,
labels cover windows only inside one block, and an emulated wearable can play a session."""

import numpy as np
import pytest
from scipy.signal import find_peaks, welch

pytest.importorskip("neurokit2", reason="simulated sessions need NeuroKit2 (the signals extra)")

from biomoe_edge.simulated_sessions import CLASSES, simulate_session, wearables_of  # noqa: E402


def dominant_hz(x, fs, band):
    f, p = welch(x - x.mean(), fs=fs, nperseg=min(len(x), int(fs * 16)))
    keep = (f >= band[0]) & (f <= band[1])
    return f[keep][np.argmax(p[keep])]


@pytest.fixture(scope="module")
def sessions():
    return [simulate_session(i, modalities=("eda", "bvp", "resp", "spo2"), block_s=40) for i in range(1, 5)]


def blocks(session, modality):
    fs = session.rates_hz[modality]
    for interval in session.labels:
        yield interval.label, session.signals[modality][int(interval.start_s * fs):int(interval.end_s * fs)], fs


def test_heart_rate_breathing_and_skin_conductance_rise_from_rest_to_strong(sessions):
    pulse, breathing, responses = ({c: [] for c in CLASSES} for _ in range(3))
    for session in sessions:
        for label, x, fs in blocks(session, "bvp"):
            pulse[label].append(60 * dominant_hz(x, fs, (0.7, 3.0)))
        for label, x, fs in blocks(session, "resp"):
            breathing[label].append(60 * dominant_hz(x, fs, (0.08, 0.7)))
        for label, x, fs in blocks(session, "eda"):
            # skin conductance responses: rises of the phasic part (first difference peaks)
            peaks, _ = find_peaks(np.diff(x), height=0.5 * np.std(np.diff(x)) + 1e-6, distance=int(2 * fs))
            responses[label].append(len(peaks))
    for measure in (pulse, breathing, responses):
        means = [np.mean(measure[c]) for c in CLASSES]
        assert means[0] < means[1] < means[2], (measure, means)
    # The subjects differ: the same class has a different pulse from one person to the next.
    assert np.std(pulse["rest"]) > 1.0


def test_a_subject_is_the_same_whoever_else_is_simulated_and_differs_from_others():
    alone = simulate_session(3, modalities=("bvp",), block_s=20)
    again = simulate_session(3, modalities=("bvp",), block_s=20)
    other = simulate_session(4, modalities=("bvp",), block_s=20)
    np.testing.assert_array_equal(alone.signals["bvp"], again.signals["bvp"])
    assert alone.subject == "sim-03" and not np.array_equal(alone.signals["bvp"], other.signals["bvp"])
    assert sorted(i.label for i in alone.labels) == sorted(CLASSES)
    assert len(alone.signals["bvp"]) == 60 * 64


def test_labels_cover_windows_inside_one_block_only():
    session = simulate_session(1, modalities=("eda",), block_s=30, repeats=2)
    first = session.labels[0]
    assert session.label_of(0.0, 10.0) == first.label
    assert session.label_of(25.0, 35.0) is None  # straddles a class change
    assert session.label_of(175.0, 185.0) is None  # beyond the session
    assert session.duration_s == 180.0 and len(session.labels) == 6


def test_an_emulated_wearable_plays_the_session_and_subjects_wear_three_devices():
    from biomoe_edge.firmware_bridge.emulation.signals import recorded_signals

    session = simulate_session(2, modalities=("eda", "spo2"), block_s=20)
    sources = recorded_signals(session.recording(["spo2", "eda"]))
    assert [(s.modality, s.sample_rate_hz) for s in sources] == [("spo2", 1.0), ("eda", 16.0)]
    np.testing.assert_array_equal(sources[1].values[:, 0], session.signals["eda"])
    assert wearables_of("sim-02", ("eda", "bvp", "resp", "spo2")) == {
        "sim-02-wrist": ("eda", "bvp"), "sim-02-chest": ("resp",), "sim-02-finger": ("spo2",)}
    with pytest.raises(ValueError, match="no simulated \\['bvp'\\]"):
        session.recording(["bvp"])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="no simulator for modalities \\['eeg'\\]"):
        simulate_session(1, modalities=("eeg",))
    with pytest.raises(ValueError, match="unknown simulated classes \\['pain'\\]"):
        simulate_session(1, classes=("rest", "pain"))
    with pytest.raises(ValueError, match="block_s must be at least 10 s"):
        simulate_session(1, block_s=5)
