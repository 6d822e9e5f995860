"""Per-modality preprocessing: resample to the model rate, band-limit, normalise (NumPy or CuPy by input)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from biomoe_edge.runtime.transforms._backend import array_module, as_float32, cached_constant, signal_module
from biomoe_edge.runtime.transforms._validation import check_sample_rate, check_signal
from biomoe_edge.runtime.transforms.defaults import modality_defaults
from biomoe_edge.runtime.transforms.quality import require_finite

#: IQR of a standard normal distribution: dividing by IQR / 1.349 gives unit scale for Gaussian noise.
IQR_TO_SIGMA = 1.349


def _rational(model_fs: float, fs: float) -> tuple[int, int]:
    # A measured rate (e.g. 100.418 Hz) has no small exact ratio: take the nearest with denominator <= 1000,
    # which is within 1e-4 of it (the sample clock of a wearable is less accurate than that).
    ratio = Fraction(model_fs / fs).limit_denominator(1000)
    if abs(float(ratio) - model_fs / fs) > 1e-4 * model_fs / fs:
        raise ValueError(f"cannot resample {fs} Hz to {model_fs} Hz with a rational factor of denominator <= 1000")
    return ratio.numerator, ratio.denominator


def _butter_sos(band_hz, order: int, fs: float) -> np.ndarray | None:
    import scipy.signal

    low, high = band_hz
    nyquist = fs / 2
    high = None if high is not None and high >= nyquist else high
    if low is not None and high is not None:
        return scipy.signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos")
    if high is not None:
        return scipy.signal.butter(order, high, btype="lowpass", fs=fs, output="sos")
    if low is not None:
        return scipy.signal.butter(order, low, btype="highpass", fs=fs, output="sos")
    return None


def robust_normalise(y, *, axis: int = -1):
    """(y - median) / (IQR / 1.349) along ``axis``; a window with zero IQR falls back to MAD, then to 1."""
    xp = array_module(y)
    median = xp.median(y, axis=axis, keepdims=True)
    q75, q25 = xp.percentile(y, [75, 25], axis=axis, keepdims=True)
    scale = (q75 - q25) / IQR_TO_SIGMA
    mad = 1.4826 * xp.median(xp.abs(y - median), axis=axis, keepdims=True)
    scale = xp.where(scale > 0, scale, xp.where(mad > 0, mad, 1.0))
    return ((y - median) / scale).astype(xp.float32)


def preprocess(x, fs, modality):
    """Window(s) ``x`` (..., N) at ``fs`` Hz -> ``(y, model_fs)``: ``y`` float32 (..., M) at the modality's model
    rate (``MODALITY_DEFAULTS[modality].model_fs``).

    Steps: ``resample_poly`` to the model rate (of the deviation from the median) (polyphase, with its anti-aliasing FIR), a zero-phase
    Butterworth band-limit (``sosfiltfilt`` on second-order sections), then normalisation (robust
    median/IQR, or a fixed physiological scale for SpO2). On CuPy arrays every step runs in
    ``cupyx.scipy.signal`` on the device. Raises ``SignalQualityError`` for NaN/Inf, ValueError for a
    bad rate or a window too short for the filter.
    """
    defaults = modality_defaults(modality)
    xp = array_module(x)
    fs = check_sample_rate(fs)
    x = as_float32(x, xp)
    check_signal(x, min_length=2)
    require_finite(x)
    signal = signal_module(xp)
    model_fs = defaults.model_fs
    if fs != model_fs:
        up, down = _rational(model_fs, fs)
        # resample_poly pads with zeros: around a large offset (raw PPG sits near 500 ADC counts) that is a
        # step at both ends. Resample the deviation from the median and add the median back.
        offset = xp.median(x, axis=-1, keepdims=True)
        x = (signal.resample_poly(x - offset, up, down, axis=-1) + offset).astype(xp.float32)
    sos_host = _butter_sos(defaults.band_hz, defaults.filter_order, model_fs)
    if sos_host is not None:
        sos = cached_constant(xp, ("sos", defaults.modality, model_fs), lambda: sos_host)
        # sosfiltfilt pads by 3 * (2 * sections + 1) samples at each end (odd extension).
        padlen = 3 * (2 * len(sos_host) + 1)
        if x.shape[-1] <= padlen:
            raise ValueError(
                f"window too short for the {defaults.modality} filter: {x.shape[-1]} samples at {model_fs} Hz, "
                f"need more than {padlen}"
            )
        x = signal.sosfiltfilt(sos, x, axis=-1).astype(xp.float32)
    if defaults.normalisation == "fixed":
        y = ((x - defaults.fixed_centre) / defaults.fixed_scale).astype(xp.float32)
    else:
        y = robust_normalise(x)
    return xp.ascontiguousarray(y), model_fs
