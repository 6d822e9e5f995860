"""The same transforms on CuPy: equal to the NumPy path and to the references. Needs CuPy and a CUDA device."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import scipy.signal

from biomoe_edge.runtime.transforms import preprocess, recurrence_plot, render, scalogram, spectrogram
from biomoe_edge.runtime.transforms.reference import reference_cwt
from biomoe_edge.vocabulary import REPRESENTATIONS

cp = pytest.importorskip("cupy", reason="CuPy is not installed (GPU transforms need `pip install biomoe-edge[gpu]`)")
try:
    _DEVICES = cp.cuda.runtime.getDeviceCount()
except Exception as exc:  # cupy installed without a driver / device
    _DEVICES, _WHY = 0, f"no CUDA device: {exc}"
else:
    _WHY = "no CUDA device visible to CuPy"
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_DEVICES == 0, reason=_WHY)]


def test_spectrogram_scalogram_recurrence_on_gpu_equal_references(real_bvp_windows):
    windows, fs = real_bvp_windows
    x = cp.asarray(windows[:2])
    options = dict(nperseg=128, noverlap=120, nfft=256)
    _, _, complex_ref = scipy.signal.spectrogram(windows[:2], fs, window="hann", detrend=False, mode="complex", **options)
    # The angle of a bin is only defined where the bin has energy: cuFFT and scipy's FFT differ by float32
    # rounding, which moves the angle of a near-empty bin anywhere (and "phase" unwraps such jumps onward).
    energetic = np.abs(complex_ref) >= 1e-2 * np.abs(complex_ref).max()
    for mode in ("psd", "angle", "phase"):
        _, _, s = spectrogram(x, fs, mode=mode, **options)
        assert isinstance(s, cp.ndarray)
        _, _, ref = scipy.signal.spectrogram(windows[:2], fs, window="hann", detrend=False, mode=mode, **options)
        if mode == "psd":
            np.testing.assert_allclose(cp.asnumpy(s), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
        else:  # angles agree modulo 2 pi wherever the bin has energy
            wrapped = np.angle(np.exp(1j * (cp.asnumpy(s).astype(np.float64) - ref)))
            assert energetic.mean() > 0.1
            np.testing.assert_array_less(np.abs(wrapped[energetic]), 2e-3)
    scales = pywt.frequency2scale("morl", np.geomspace(0.5, 8.0, 24) / fs)
    w = scalogram(x, fs, scales=scales)
    coef = reference_cwt(windows[:2], scales, "morl")  # pywt.cwt at precision 12, or the oracle before PyWavelets 1.9
    expected = np.moveaxis(np.abs(coef), 0, -2)
    np.testing.assert_allclose(cp.asnumpy(w), expected, rtol=1e-4, atol=2e-5 * expected.max())
    r = recurrence_plot(x[:, :300], threshold=None)
    np.testing.assert_allclose(cp.asnumpy(r), recurrence_plot(windows[:2, :300], threshold=None), atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_render_on_gpu_matches_numpy_into_the_callers_buffer_on_a_stream(real_bvp_windows, dtype):
    windows, fs = real_bvp_windows
    expected = render(windows, fs, REPRESENTATIONS, modality="bvp")
    out = cp.full((windows.shape[0] * len(REPRESENTATIONS), 3, 224, 224), cp.nan, dtype=dtype)
    stream = cp.cuda.Stream(non_blocking=True)
    result = render(cp.asarray(windows), fs, REPRESENTATIONS, modality="bvp", out=out, stream=stream)
    stream.synchronize()
    assert result is out
    images = cp.asnumpy(out).astype(np.float32)
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    # cuFFT and scipy's FFT round differently, so a map value at a colour-table bin edge can take the next
    # colour: compare pictures (PSNR per image, the parity measure of the reference renderer), not pixels.
    mse = ((images - expected) ** 2).reshape(len(images), -1).mean(axis=1)
    psnr_db = 10 * np.log10(1.0 / np.maximum(mse, 1e-12))
    assert psnr_db.min() >= 45.0, dict(zip(REPRESENTATIONS * windows.shape[0], np.round(psnr_db, 1)))


def test_preprocess_on_gpu_matches_numpy(real_bvp_windows):
    from biomoe_edge.runtime.transforms.signals import real_ppg

    x, fs = real_ppg("data.csv")
    host, model_fs = preprocess(x[:1000], fs, "bvp")
    device, device_fs = preprocess(cp.asarray(x[:1000]), fs, "bvp")
    assert device_fs == model_fs and isinstance(device, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(device), host, atol=1e-3)
