"""Array-module dispatch: NumPy or CuPy follows the input; CuPy is imported only when an input is a CuPy array.

Everything in this package is written once against the ``xp`` returned here (``cupy.get_array_module``
style), plus the SciPy-like FFT and signal modules of the same backend (``scipy.fft`` / ``cupyx.scipy.fft``,
``scipy.signal`` / ``cupyx.scipy.signal``). ``cupyx.scipy.fft`` keeps cuFFT plans in CuPy's plan cache, so
the per-shape plan is built on the first call and reused afterwards.
"""

from __future__ import annotations

import contextlib

import numpy as np


def is_cupy_array(x) -> bool:
    """True for a CuPy ndarray, decided without importing CuPy."""
    return type(x).__module__.split(".")[0] == "cupy"


def array_module(x):
    """``numpy`` or ``cupy``, whichever owns ``x`` (a NumPy array, a CuPy array, or array-like)."""
    if is_cupy_array(x):
        import cupy

        return cupy
    return np


def fft_module(xp):
    """The SciPy-compatible FFT module for ``xp`` (float32 in, float32/complex64 out on both)."""
    if xp is np:
        import scipy.fft

        return scipy.fft
    import cupyx.scipy.fft

    return cupyx.scipy.fft


def signal_module(xp):
    """``scipy.signal`` or ``cupyx.scipy.signal`` (never the retired cuSignal)."""
    if xp is np:
        import scipy.signal

        return scipy.signal
    import cupyx.scipy.signal

    return cupyx.scipy.signal


def as_float32(x, xp):
    """``x`` as a C-contiguous float32 array of module ``xp`` (no copy when it already is one)."""
    return xp.ascontiguousarray(xp.asarray(x, dtype=xp.float32))


_CONSTANTS: dict = {}


def cached_constant(xp, key: tuple, build):
    """``build()`` (a host NumPy constant: window, filter bank, resize weights), cached per backend and per
    CUDA device under ``key``, so it is computed once and copied to the GPU once."""
    full_key = ("numpy",) + key if xp is np else ("cupy", xp.cuda.Device().id) + key
    value = _CONSTANTS.get(full_key)
    if value is None:
        value = build()
        if xp is not np:
            value = xp.asarray(value)
        _CONSTANTS[full_key] = value
    return value


def stream_context(stream):
    """``with stream:`` for a CuPy stream the caller passed; a no-op context otherwise."""
    return stream if stream is not None else contextlib.nullcontext()
