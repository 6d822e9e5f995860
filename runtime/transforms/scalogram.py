"""Continuous wavelet transform magnitude: the SDK's scalogram, with the wavelet sampled at 2**12 points.

The definition is PyWavelets' ``cwt`` (``method="fft"``) with ``precision=WAVELET_PRECISION`` (12): the signal is
convolved with the integrated wavelet resampled at each scale, then differentiated. 12 is PyWavelets' own default
from 1.9 on; PyWavelets 1.8 and older (the newest on Python 3.10) sample at a fixed 2**10 points, which its 1.9
docstring says "will distort coefficients and their norms, with a zipper-like effect" (on real PPG windows the
two differ by up to 2.56 on magnitudes of a few units). So the SDK builds its filter bank itself from ``pywt.integrate_wavelet(wavelet,
precision=WAVELET_PRECISION)``, available in every supported PyWavelets, and its pictures do not depend on the
PyWavelets release installed. ``reference.reference_cwt`` is the independent reference (PyWavelets' ``cwt`` where it
takes ``precision``, a plain convolution elsewhere).

Here the integrated-wavelet filter bank for (wavelet, scales, N) is built once on the host, transformed once, and
cached (on the GPU for CuPy); each call is then one batched forward FFT, one broadcast multiply and one batched
inverse FFT (real FFTs for the real ``morl``), all padded to one common length.
"""

from __future__ import annotations

import math

import numpy as np

from biomoe_edge.runtime.transforms._backend import array_module, as_float32, cached_constant, fft_module
from biomoe_edge.runtime.transforms._validation import check_sample_rate, check_signal

#: The wavelet is integrated on 2**WAVELET_PRECISION points (``precision`` of ``pywt.integrate_wavelet`` and, from
#: PyWavelets 1.9 on, of ``pywt.cwt``, whose default it is). Part of the definition of every scalogram picture.
WAVELET_PRECISION = 12


def _check_wavelet(wavelet):
    import pywt

    if not isinstance(wavelet, str):
        raise ValueError(f"wavelet must be a PyWavelets continuous wavelet name, got {wavelet!r}")
    if not (wavelet == "morl" or wavelet.startswith("cmor")):
        raise ValueError(f"wavelet must be 'morl' or a complex Morlet 'cmorB-C', got {wavelet!r}")
    try:
        return pywt.ContinuousWavelet(wavelet)
    except ValueError as exc:
        raise ValueError(f"invalid wavelet {wavelet!r}: {exc}") from None


def _filter_bank(wavelet_name: str, scales: tuple, n_samples: int):
    """Per-scale integrated-wavelet taps as pywt.cwt builds them (at WAVELET_PRECISION), padded to one FFT size.

    Returns (spectra (S, L) complex64, L, crop starts (S,) int, n_taps (S,) int).
    """
    import pywt
    import scipy.fft

    wavelet = _check_wavelet(wavelet_name)
    int_psi, grid = pywt.integrate_wavelet(wavelet, precision=WAVELET_PRECISION)
    int_psi = np.conj(int_psi) if wavelet.complex_cwt else int_psi
    # Tap indices on the float64 grid: pywt.cwt's result for float64 data. (For float32 data pywt rounds the
    # grid to float32 first, which picks different taps and moves its own output by up to ~2 %.)
    grid = np.asarray(grid, dtype=np.float64)
    taps = []
    for scale in scales:
        step = grid[1] - grid[0]
        j = (np.arange(scale * (grid[-1] - grid[0]) + 1) / (scale * step)).astype(int)
        j = j[j < int_psi.size]
        taps.append(int_psi[j][::-1])
    longest = max(t.size for t in taps)
    size = scipy.fft.next_fast_len(n_samples + longest - 1)
    bank = np.zeros((len(scales), size), dtype=np.complex128)
    for row, t in enumerate(taps):
        bank[row, : t.size] = t
    # A real wavelet (morl) convolves a real signal into a real result: half-spectrum FFTs suffice.
    if np.iscomplexobj(int_psi):
        spectra = scipy.fft.fft(bank, axis=-1).astype(np.complex64)
    else:
        spectra = scipy.fft.rfft(bank.real, axis=-1).astype(np.complex64)
    n_taps = np.array([t.size for t in taps])
    # pywt: conv has N + K - 1 points, diff leaves N + K - 2, then crops floor(d) at the start, d = (K - 2) / 2.
    starts = np.array([math.floor((k - 2) / 2) for k in n_taps])
    if np.any(n_taps < 2):
        raise ValueError("a scale is too small for this wavelet (fewer than 2 filter taps); use larger scales")
    return spectra, size, starts, n_taps


def scalogram(x, fs, *, scales, wavelet="morl"):
    """|CWT| of ``x`` (..., N): shape (..., len(scales), N), float32, NumPy or CuPy following ``x``.

    Equals ``abs(pywt.cwt(x, scales, wavelet, sampling_period=1/fs, method="fft", precision=12)[0])`` (PyWavelets
    >= 1.9) moved to axes (..., S, N), for ``morl`` and complex Morlet ``cmorB-C`` wavelets, whatever PyWavelets is
    installed (see the module docstring). ``fs`` only labels frequencies in PyWavelets, so it does not change the
    result; it is checked and kept for a uniform signature.
    """
    xp = array_module(x)
    check_sample_rate(fs)
    x = as_float32(x, xp)
    check_signal(x)
    scales_host = np.atleast_1d(np.asarray(scales.get() if hasattr(scales, "get") else scales, dtype=np.float64))
    if scales_host.ndim != 1 or scales_host.size == 0 or not np.all(scales_host > 0):
        raise ValueError("scales must be a non-empty 1-D sequence of positive numbers")
    key = ("cwt", wavelet, tuple(scales_host.tolist()), x.shape[-1])
    spectra, size, starts, n_taps = _filter_bank_cached(key)
    spectra_xp = cached_constant(xp, key + ("spectra",), lambda: spectra)
    gather = cached_constant(
        xp, key + ("gather",), lambda: (starts[:, None] + np.arange(x.shape[-1])[None, :]).astype(np.int64)
    )
    root_scales = cached_constant(xp, key + ("sqrt",), lambda: np.sqrt(scales_host).astype(np.float32)[:, None])

    fft = fft_module(xp)
    if _is_real_wavelet(wavelet):
        conv = fft.irfft(fft.rfft(x, n=size, axis=-1)[..., None, :] * spectra_xp, n=size, axis=-1)  # (..., S, L)
    else:
        conv = fft.ifft(fft.fft(x, n=size, axis=-1)[..., None, :] * spectra_xp, axis=-1)  # complex64
    # coef = -sqrt(scale) * diff(conv); keep the N central points pywt keeps.
    rows = xp.arange(len(scales_host))[:, None]
    magnitude = xp.abs(conv[..., rows, gather + 1] - conv[..., rows, gather])
    return (magnitude * root_scales).astype(xp.float32, copy=False)


def _is_real_wavelet(name: str) -> bool:
    return name == "morl"


_BANKS: dict = {}


def _filter_bank_cached(key):
    bank = _BANKS.get(key)
    if bank is None:
        _, wavelet, scales, n_samples = key
        bank = _filter_bank(wavelet, scales, n_samples)
        _BANKS[key] = bank
    return bank
