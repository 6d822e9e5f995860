"""preprocess, MODALITY_DEFAULTS, quality checks and the real/simulated signal helpers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from biomoe_edge.runtime.transforms import (
    MODALITY_DEFAULTS,
    SignalQualityError,
    check_window,
    preprocess,
)
from biomoe_edge.runtime.transforms.signals import real_ppg, real_ppg_windows, simulated_signal
from biomoe_edge.vocabulary import Modality


def test_every_modality_has_documented_defaults():
    assert set(MODALITY_DEFAULTS) == {m.value for m in Modality}
    for name, d in MODALITY_DEFAULTS.items():
        assert d.modality == name and d.model_fs > 0 and len(d.reason) > 40
        high = d.band_hz[1]
        assert high is None or high < d.model_fs / 2  # the band fits below Nyquist at the model rate
        assert d.scalogram.f_max_hz <= d.model_fs / 2


def test_preprocess_matches_scipy_steps_for_bvp():
    x, fs = real_ppg("data.csv")
    window = x[:1000]
    y, model_fs = preprocess(window, fs, "bvp")
    assert model_fs == 64.0 and y.shape == (640,) and y.dtype == np.float32
    # Independent float64 chain: resample_poly 100 -> 64 Hz (16/25) around the median, Butterworth 0.5-8 Hz forward-backward.
    median = np.median(window)
    resampled = scipy.signal.resample_poly(window - median, 16, 25) + median
    sos = scipy.signal.butter(2, [0.5, 8.0], btype="bandpass", fs=64.0, output="sos")
    filtered = scipy.signal.sosfiltfilt(sos, resampled)
    q75, q25 = np.percentile(filtered, [75, 25])
    expected = (filtered - np.median(filtered)) / ((q75 - q25) / 1.349)
    np.testing.assert_allclose(y, expected, atol=2e-3)
    assert abs(np.median(y)) < 1e-5 and 0.9 < (np.percentile(y, 75) - np.percentile(y, 25)) / 1.349 < 1.1


def test_preprocess_batches_and_keeps_the_band():
    fs = 200.0
    t = np.arange(int(10 * fs)) / fs
    # 1.2 Hz pulse + 0.05 Hz drift + 40 Hz interference: the BVP band keeps only the pulse.
    x = np.sin(2 * np.pi * 1.2 * t) + 3 * np.sin(2 * np.pi * 0.05 * t) + 0.5 * np.sin(2 * np.pi * 40 * t)
    y, model_fs = preprocess(np.stack([x, 2 * x + 5]), fs, "bvp")
    assert y.shape == (2, 640)
    np.testing.assert_allclose(y[0], y[1], atol=1e-4)  # robust normalisation removes gain and offset
    f, p = scipy.signal.periodogram(y[0], model_fs)
    assert f[np.argmax(p)] == pytest.approx(1.2, abs=0.1)


def test_spo2_keeps_its_absolute_level():
    y, fs = preprocess(np.full(40, 97.0) + np.linspace(0, 0.1, 40), 4.0, "spo2")
    assert fs == 4.0 and np.allclose(y, 0.4, atol=0.05)  # (97 - 95) / 5, not a blown-up flat window


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.array([1.0, np.nan] * 500), "non-finite"),
        (np.array([1.0, np.inf] * 500), "non-finite"),
    ],
)
def test_preprocess_rejects_nonfinite(bad, message):
    with pytest.raises(SignalQualityError, match=message) as info:
        preprocess(bad, 100.0, "bvp")
    assert info.value.problem == "nonfinite" and isinstance(info.value, ValueError)


def test_preprocess_argument_errors():
    x = np.random.default_rng(0).standard_normal(1000)
    with pytest.raises(ValueError, match="unknown modality"):
        preprocess(x, 100.0, "emg")
    with pytest.raises(ValueError, match="sample rate"):
        preprocess(x, 0, "bvp")
    with pytest.raises(ValueError, match="sample rate"):
        preprocess(x, float("nan"), "bvp")
    with pytest.raises(ValueError, match="too short"):
        preprocess(x[:20], 100.0, "bvp")


def test_check_window_flags():
    rng = np.random.default_rng(0)
    good = rng.standard_normal(640)
    assert check_window(good, 64.0, expected_fs=64.0, expected_samples=640) == ()
    assert check_window(np.full(640, 3.0), 64.0) == ("flat",)
    clipped = np.clip(good, -0.5, 0.5)  # ~60 % of the samples on a rail
    assert check_window(clipped, 64.0) == ("saturated",)
    assert "saturated" in check_window(good, 64.0, limits=(-1.0, 1.0))
    with_nan = good.copy()
    with_nan[5] = np.nan
    assert check_window(with_nan, 64.0) == ("nonfinite",)
    assert check_window(good, 50.0, expected_fs=64.0, expected_samples=600) == ("wrong_length", "wrong_rate")
    with pytest.raises(SignalQualityError, match="flat line") as info:
        check_window(np.zeros(640), 64.0, strict=True)
    assert info.value.problem == "flat"
    with pytest.raises(SignalQualityError, match="expected 640"):
        check_window(good[:600], 64.0, expected_samples=640, strict=True)


def test_heartpy_recordings_and_windows():
    for name, rate in (("data.csv", 100.0), ("data2.csv", 117.0), ("data3.csv", 100.4)):
        x, fs = real_ppg(name)
        assert fs == pytest.approx(rate, rel=5e-3) and x.ndim == 1 and np.isfinite(x).all()
    windows, fs = real_ppg_windows(8)
    assert windows.shape == (8, 640) and fs == 64.0 and windows.dtype == np.float32
    # Real PPG: in most windows the strongest component is a pulse rate (40-180 bpm); some are dominated
    # by respiration-driven baseline at ~0.4 Hz, which the 0.5 Hz high-pass only attenuates.
    f, p = scipy.signal.periodogram(windows, fs, axis=-1)
    peaks = f[p.argmax(axis=-1)]
    assert np.mean((peaks > 0.66) & (peaks < 3.0)) >= 0.7, peaks
    with pytest.raises(ValueError, match="fewer than"):
        real_ppg_windows(10_000)


def test_simulated_signals():
    ecg, fs = simulated_signal("ecg", 10, 250.0, seed=1)
    assert fs == 250.0 and ecg.shape == (2500,)
    again, _ = simulated_signal("ecg", 10, 250.0, seed=1)
    np.testing.assert_array_equal(ecg, again)  # seeded
    spo2, fs = simulated_signal("spo2", 30, 1.0, seed=0)
    assert spo2.shape == (30,) and 85 < spo2.min() and spo2.max() <= 100


def test_ppg_is_bvp_and_parameters_follow_the_rate():
    from biomoe_edge.runtime.transforms import modality_defaults, representation_params

    assert modality_defaults("PPG") is MODALITY_DEFAULTS["bvp"] is modality_defaults(Modality.BVP)
    at_64 = representation_params(64.0, 640, "bvp")
    at_128 = representation_params(128.0, 1280, "bvp")
    # Same seconds and hertz at any rate: the STFT segment is 2 s, the scalogram spans 0.5-8 Hz.
    assert at_64["spectrogram"]["nperseg"] == 128 and at_128["spectrogram"]["nperseg"] == 256
    import pywt

    freqs = pywt.scale2frequency("morl", np.array(at_128["scalogram"]["scales"])) * 128.0
    np.testing.assert_allclose(freqs[[0, -1]], [0.5, 8.0])
