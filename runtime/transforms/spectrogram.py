"""Short-time Fourier spectrogram, equal to ``scipy.signal.spectrogram`` (detrend=False, scaling="density")."""

from __future__ import annotations

import numpy as np

from biomoe_edge.runtime.transforms._backend import array_module, as_float32, cached_constant, fft_module
from biomoe_edge.runtime.transforms._validation import check_sample_rate, check_signal, check_spectrogram_params


def _window(name, nperseg: int) -> np.ndarray:
    import scipy.signal

    return np.asarray(scipy.signal.get_window(name, nperseg), dtype=np.float32)


def _frame_indices(n_samples: int, nperseg: int, step: int) -> np.ndarray:
    starts = np.arange(0, n_samples - nperseg + 1, step)
    return starts[:, None] + np.arange(nperseg)[None, :]


def stft(x, fs, *, nperseg, noverlap, nfft=None, window="hann"):
    """One-sided STFT of ``x`` (..., N): complex64 (..., n_segments, nfft // 2 + 1), unscaled, plus the
    density scale ``1 / (fs * sum(window**2))`` and the validated (nperseg, noverlap, nfft)."""
    xp = array_module(x)
    x = as_float32(x, xp)
    fs = check_sample_rate(fs)
    check_signal(x)
    nperseg, noverlap, nfft = check_spectrogram_params(x.shape[-1], nperseg, noverlap, nfft, "psd")
    if not isinstance(window, (str, tuple)):
        raise ValueError(f"window must be a scipy.signal.get_window name or tuple, got {window!r}")
    step = nperseg - noverlap
    n = x.shape[-1]
    win = cached_constant(xp, ("window", window, nperseg), lambda: _window(window, nperseg))
    index = cached_constant(xp, ("frames", n, nperseg, step), lambda: _frame_indices(n, nperseg, step))
    segments = x[..., index] * win  # (..., T, nperseg)
    spectrum = fft_module(xp).rfft(segments, n=nfft, axis=-1)  # (..., T, F) complex64
    scale = 1.0 / (fs * float((_window(window, nperseg).astype(np.float64) ** 2).sum()))
    return spectrum, scale, (nperseg, noverlap, nfft)


def density(spectrum, scale: float, nfft: int):
    """One-sided power spectral density (..., T, F) float32 from ``stft``'s output, as scipy scales it."""
    power = (spectrum.real * spectrum.real + spectrum.imag * spectrum.imag) * np.float32(scale)
    # Every bin except DC (and Nyquist for even nfft) carries both halves of the two-sided spectrum.
    power[..., 1 : None if nfft % 2 else -1] *= 2
    return power


def spectrogram(x, fs, *, nperseg, noverlap, nfft=None, window="hann", mode="psd"):
    """Spectrogram of ``x`` (..., N) along its last axis, on NumPy or CuPy (follows ``x``), float32.

    Returns ``(f, t, S)`` with ``S`` of shape (..., nfft // 2 + 1, n_segments), equal to
    ``scipy.signal.spectrogram(x, fs, window=window, nperseg=nperseg, noverlap=noverlap, nfft=nfft,
    detrend=False, scaling="density", mode=mode, axis=-1)`` for ``mode`` in {"psd", "angle", "phase"}
    ("phase" is the angle unwrapped along frequency, as in scipy and matplotlib's ``specgram``).
    ``f`` and ``t`` are float64 arrays of the same module as ``x``.
    """
    xp = array_module(x)
    if mode not in ("psd", "angle", "phase"):
        raise ValueError(f"mode must be 'psd', 'angle' or 'phase', got {mode!r}")
    spectrum, scale, (nperseg, noverlap, nfft) = stft(
        x, fs, nperseg=nperseg, noverlap=noverlap, nfft=nfft, window=window
    )
    if mode == "psd":
        result = density(spectrum, scale, nfft)
    else:
        result = xp.angle(spectrum).astype(xp.float32, copy=False)
        if mode == "phase":
            result = xp.unwrap(result, axis=-1)
    result = xp.ascontiguousarray(xp.swapaxes(result, -1, -2))
    n = x.shape[-1]
    freqs = xp.asarray(np.fft.rfftfreq(nfft, 1 / float(fs)))
    times = xp.asarray(np.arange(nperseg / 2, n - nperseg / 2 + 1, nperseg - noverlap) / float(fs))
    return freqs, times, result
