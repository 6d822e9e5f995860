"""Window-by-window resampling to a modality's model rate (``vocabulary.MODEL_RATES_HZ``).

Rational factors go through ``scipy.signal.resample_poly`` (polyphase FIR with anti-aliasing). Each window
is resampled on its own, so the result does not depend on how the samples were split into packets.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Callable

import numpy as np
from scipy.signal import firwin, resample_poly

from biomoe_edge.vocabulary import model_rate_hz  # noqa: F401 - the ingest's windows come out at this rate

#: ``resampler(x, fs_in, fs_out, n_out)``: x is (channels, n_in); returns (channels, n_out).
Resampler = Callable[[np.ndarray, float, float, int], np.ndarray]


@functools.lru_cache(maxsize=256)
def rational_factor(fs_in: float, fs_out: float, *, max_denominator: int = 1000) -> tuple[int, int]:
    """(up, down) with fs_in * up / down == fs_out, exactly where the rates allow, else to 1/max_denominator."""
    ratio = (Fraction(fs_out).limit_denominator(10**6) / Fraction(fs_in).limit_denominator(10**6))
    ratio = ratio.limit_denominator(max_denominator)
    return ratio.numerator, ratio.denominator


@functools.lru_cache(maxsize=64)
def _antialiasing_filter(up: int, down: int) -> np.ndarray:
    """The FIR filter resample_poly designs by default (Kaiser, beta 5), designed once per factor pair."""
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def resample_window(x: np.ndarray, fs_in: float, fs_out: float, n_out: int) -> np.ndarray:
    """Resample (channels, n_in) to (channels, n_out) at ``fs_out`` with resample_poly.

    The same numbers as ``resample_poly(x, up, down, axis=-1, padtype="line")`` with its default filter,
    which is designed once per factor pair instead of once per window. ``padtype="line"`` extends each
    window by its linear trend rather than zeros, so window edges do not droop towards zero. Output is cut
    (or edge-padded by at most a sample or two) to exactly ``n_out``.
    """
    up, down = rational_factor(fs_in, fs_out)
    divisor = math.gcd(up, down)
    up, down = up // divisor, down // divisor
    if up == down:
        y = np.array(x, dtype=np.float64, copy=True)
    else:
        y = resample_poly(x, up, down, axis=-1, window=_antialiasing_filter(up, down), padtype="line")
    if y.shape[-1] >= n_out:
        return np.ascontiguousarray(y[..., :n_out])
    return np.pad(y, ((0, 0), (0, n_out - y.shape[-1])), mode="edge")
