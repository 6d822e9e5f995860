"""spectrogram / scalogram / recurrence_plot against scipy, PyWavelets and pyts (NumPy path).

Tolerances: the SDK computes in float32 (FFTs in float32), the references in float64 (or float32 for scipy
on float32 input). float32 has a 6e-8 unit roundoff; FFTs of length L accumulate about log2(L) of those,
so relative errors of ~1e-5 of the array's largest value are float32 noise, not a defect.
"""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import scipy.signal

from biomoe_edge.runtime.transforms import recurrence_plot, scalogram, spectrogram


def _scipy_spectrogram(x, fs, mode, window="hann", **kw):
    # window passed explicitly: scipy's own default is ("tukey_periodic", 0.25), the SDK's is "hann".
    return scipy.signal.spectrogram(x, fs, window=window, detrend=False, scaling="density", mode=mode, axis=-1, **kw)


@pytest.mark.parametrize("mode", ["psd", "angle", "phase"])
@pytest.mark.parametrize("kw", [dict(nperseg=128, noverlap=120, nfft=256), dict(nperseg=50, noverlap=25, nfft=None, window="hamming")])
def test_spectrogram_equals_scipy_on_real_ppg(real_bvp_windows, mode, kw):
    windows, fs = real_bvp_windows
    f, t, s = spectrogram(windows, fs, mode=mode, **kw)
    # scipy on the same float32 input computes in float32 too (scipy.fft keeps the precision).
    f_ref, t_ref, s_ref = _scipy_spectrogram(windows, fs, mode, **kw)
    assert s.dtype == np.float32 and s.shape == s_ref.shape
    np.testing.assert_allclose(f, f_ref)
    np.testing.assert_allclose(t, t_ref)
    scale = np.abs(s_ref).max()
    np.testing.assert_allclose(s, s_ref, rtol=1e-4, atol=1e-5 * scale)


def test_spectrogram_batches_over_leading_axes(noise_windows):
    _, _, s = spectrogram(noise_windows, 50.0, nperseg=64, noverlap=32, mode="psd")
    _, _, s_ref = _scipy_spectrogram(noise_windows.astype(np.float64), 50.0, "psd", nperseg=64, noverlap=32)
    assert s.shape == (2, 3, 33, 14)
    np.testing.assert_allclose(s, s_ref, rtol=1e-4, atol=1e-6 * s_ref.max())


@pytest.mark.parametrize("wavelet", ["morl", "cmor1.5-1.0", "cmor2.0-0.5"])
def test_scalogram_equals_pywavelets_fft(real_bvp_windows, wavelet):
    windows, fs = real_bvp_windows
    x = windows[:2]
    scales = pywt.frequency2scale(wavelet, np.geomspace(0.5, 8.0, 24) / fs)
    w = scalogram(x, fs, scales=scales, wavelet=wavelet)
    # The definition is pywt's float64 result (pywt rounds its tap grid to float32 for float32 data).
    coef, _ = pywt.cwt(x.astype(np.float64), scales, wavelet, sampling_period=1 / fs, method="fft")
    expected = np.moveaxis(np.abs(coef), 0, -2)
    assert w.shape == expected.shape == (2, 24, 640) and w.dtype == np.float32
    np.testing.assert_allclose(w, expected, rtol=1e-4, atol=2e-5 * expected.max())


def test_scalogram_leading_axes_and_bad_scales(noise_windows):
    scales = np.array([2.0, 4.0, 8.0])
    w = scalogram(noise_windows, 50.0, scales=scales)
    coef, _ = pywt.cwt(noise_windows.astype(np.float64), scales, "morl", method="fft")
    np.testing.assert_allclose(w, np.moveaxis(np.abs(coef), 0, -2), rtol=1e-4, atol=1e-5 * np.abs(coef).max())
    with pytest.raises(ValueError, match="scales"):
        scalogram(noise_windows, 50.0, scales=[1.0, -2.0])
    with pytest.raises(ValueError, match="wavelet"):
        scalogram(noise_windows, 50.0, scales=scales, wavelet="db4")


@pytest.mark.parametrize("dimension,time_delay", [(1, 1), (3, 4)])
@pytest.mark.parametrize("threshold", [None, "point", "distance", 0.4])
def test_recurrence_plot_equals_pyts(real_bvp_windows, pyts_recurrence_plot, dimension, time_delay, threshold):
    RecurrencePlot = pyts_recurrence_plot
    x = real_bvp_windows[0][:2, :300]
    r = recurrence_plot(x, dimension=dimension, time_delay=time_delay, threshold=threshold, percentage=15)
    ref = RecurrencePlot(dimension=dimension, time_delay=time_delay, threshold=threshold, percentage=15).transform(
        x.astype(np.float64)
    )
    assert r.shape == ref.shape and r.dtype == np.float32
    if threshold is None:
        np.testing.assert_allclose(r, ref, rtol=1e-5, atol=1e-5 * ref.max())
        return
    # Binary plots: a pair may only disagree if its float64 distance is within float32 rounding of the cut-off.
    distances = RecurrencePlot(dimension=dimension, time_delay=time_delay).transform(x.astype(np.float64))
    if threshold == "point":
        cut = np.percentile(distances.reshape(2, -1), 15, axis=1)[:, None, None]
    elif threshold == "distance":
        cut = 0.15 * distances.max(axis=(1, 2))[:, None, None]
    else:
        cut = threshold
    disagree = r != ref
    assert np.all(np.abs(distances - cut)[disagree] <= 1e-5 * distances.max())
    assert disagree.mean() < 1e-3


def test_recurrence_parameter_errors():
    x = np.zeros(20, dtype=np.float32) + np.arange(20)
    with pytest.raises(ValueError, match="threshold"):
        recurrence_plot(x, threshold="nearest")
    with pytest.raises(ValueError, match="dimension"):
        recurrence_plot(x, dimension=30)
    with pytest.raises(ValueError, match="percentage"):
        recurrence_plot(x, threshold="point", percentage=150)


def test_spectrogram_parameter_errors(noise_windows):
    with pytest.raises(ValueError, match="noverlap"):
        spectrogram(noise_windows, 50.0, nperseg=64, noverlap=64)
    with pytest.raises(ValueError, match="nfft"):
        spectrogram(noise_windows, 50.0, nperseg=64, noverlap=32, nfft=32)
    with pytest.raises(ValueError, match="longer than the signal"):
        spectrogram(noise_windows, 50.0, nperseg=1000, noverlap=0)
    with pytest.raises(ValueError, match="mode"):
        spectrogram(noise_windows, 50.0, nperseg=64, noverlap=32, mode="magnitude")
    with pytest.raises(ValueError, match="sample rate"):
        spectrogram(noise_windows, -1.0, nperseg=64, noverlap=32)
