"""spectrogram / scalogram / recurrence_plot against scipy, PyWavelets and pyts (NumPy path).

Tolerances: the SDK computes in float32 (FFTs in float32), the references in float64 (or float32 for scipy
on float32 input). float32 has a 6e-8 unit roundoff; FFTs of length L accumulate about log2(L) of those,
so relative errors of ~1e-5 of the array's largest value are float32 noise, not a defect.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import pywt
import scipy.signal

from biomoe_edge.runtime.transforms import recurrence_plot, scalogram, spectrogram
from biomoe_edge.runtime.transforms.reference import (
    cwt_by_convolution,
    cwt_precision_supported,
    reference_cwt,
    reference_map,
    reference_recurrence,
)
from biomoe_edge.runtime.transforms.scalogram import WAVELET_PRECISION


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


WAVELETS = ["morl", "cmor1.5-1.0", "cmor2.0-0.5"]
PYWAVELETS = importlib.metadata.version("PyWavelets")  # pywt.__version__ of the 1.9.0 wheel says "1.8.0"
needs_cwt_precision = pytest.mark.skipif(
    not cwt_precision_supported(),
    reason=f"PyWavelets {PYWAVELETS} samples the wavelet of cwt at a fixed 2**10 points (its precision argument came "
    "in 1.9, which needs Python >= 3.11); here the scalogram is checked against the convolution oracle instead",
)


def _bvp_scales(wavelet, fs):
    return pywt.frequency2scale(wavelet, np.geomspace(0.5, 8.0, 24) / fs)


@needs_cwt_precision
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_scalogram_equals_pywavelets_cwt_at_precision_12(real_bvp_windows, wavelet):
    windows, fs = real_bvp_windows
    x = windows[:2]
    scales = _bvp_scales(wavelet, fs)
    w = scalogram(x, fs, scales=scales, wavelet=wavelet)
    # The definition is pywt's float64 result (pywt rounds its tap grid to float32 for float32 data).
    coef, _ = pywt.cwt(x.astype(np.float64), scales, wavelet, sampling_period=1 / fs, method="fft", precision=12)
    expected = np.moveaxis(np.abs(coef), 0, -2)
    assert WAVELET_PRECISION == 12
    assert w.shape == expected.shape == (2, 24, 640) and w.dtype == np.float32
    np.testing.assert_allclose(w, expected, rtol=1e-4, atol=2e-5 * expected.max())


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_scalogram_equals_the_convolution_oracle(real_bvp_windows, wavelet):
    """On every PyWavelets: the integrated wavelet at precision 12 and a plain numpy.convolve, in float64."""
    windows, fs = real_bvp_windows
    x = windows[:2]
    scales = _bvp_scales(wavelet, fs)
    w = scalogram(x, fs, scales=scales, wavelet=wavelet)
    expected = np.moveaxis(np.abs(cwt_by_convolution(x, scales, wavelet, precision=12)), 0, -2)
    assert w.shape == expected.shape == (2, 24, 640) and w.dtype == np.float32
    np.testing.assert_allclose(w, expected, rtol=1e-4, atol=2e-5 * expected.max())


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_convolution_oracle_equals_pywavelets_at_every_precision_it_takes(real_bvp_windows, wavelet):
    """The oracle is PyWavelets' own algorithm: equal to pywt.cwt at 2**10 points (every release) and at 2**12
    (where cwt takes precision); and the precision matters far beyond the scalogram tests' tolerance."""
    windows, fs = real_bvp_windows
    x = windows[:2].astype(np.float64)
    scales = _bvp_scales(wavelet, fs)
    precisions = (10, 12) if cwt_precision_supported() else (10,)
    for precision in precisions:
        keyword = {"precision": precision} if cwt_precision_supported() else {}
        coef, _ = pywt.cwt(x, scales, wavelet, method="fft", **keyword)
        oracle = cwt_by_convolution(x, scales, wavelet, precision=precision)
        assert oracle.shape == coef.shape == (24, 2, 640) and oracle.dtype == coef.dtype
        np.testing.assert_allclose(oracle, coef, rtol=1e-9, atol=1e-9 * np.abs(coef).max())
    coarse = np.abs(cwt_by_convolution(x, scales, wavelet, precision=10))
    fine = np.abs(cwt_by_convolution(x, scales, wavelet, precision=12))
    assert np.abs(coarse - fine).max() > 100 * 2e-5 * fine.max()


def test_scalogram_leading_axes_and_bad_scales(noise_windows):
    scales = np.array([2.0, 4.0, 8.0])
    w = scalogram(noise_windows, 50.0, scales=scales)
    coef = reference_cwt(noise_windows, scales, "morl")  # pywt.cwt(precision=12), or the oracle before 1.9
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


@pytest.mark.parametrize("dimension,time_delay", [(1, 1), (3, 4)])
@pytest.mark.parametrize("threshold", [None, "point", "distance", 0.4])
def test_reference_renderers_recurrence_equals_pyts(real_bvp_windows, pyts_recurrence_plot, dimension, time_delay, threshold):
    x = real_bvp_windows[0][0, :300].astype(np.float64)
    params = dict(dimension=dimension, time_delay=time_delay, threshold=threshold, percentage=15)
    ours = reference_recurrence(x, **params)
    ref = pyts_recurrence_plot(**params).transform(x[None, :])[0]
    assert ours.shape == ref.shape == (300 - (dimension - 1) * time_delay,) * 2
    if threshold is None:
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12 * ref.max())
    else:  # both in float64 from the same distances: the same pairs fall under the cut-off
        np.testing.assert_array_equal(ours, ref)
        assert 0 < ours.mean() < 1


def test_reference_map_recurrence_at_the_bvp_defaults_equals_pyts(real_bvp_windows, pyts_recurrence_plot):
    windows, fs = real_bvp_windows
    plot, vmin, vmax = reference_map(windows[0], fs, "recurrence", modality="bvp")
    ref = pyts_recurrence_plot(dimension=1, threshold="distance", percentage=10).transform(windows[:1].astype(np.float64))[0]
    np.testing.assert_array_equal(plot, ref)
    assert (vmin, vmax) == (0.0, 1.0)


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
